// `openHsm(uri)`: the one way the rest of the project gets a driver.

import type { HsmDriver } from './driver.js';
import { parseHsmUri } from './uri.js';
import { Pkcs11Driver, type Pkcs11DriverOptions } from './pkcs11/driver.js';
import { FakeDriver, type FakeDriverOptions } from './fake/driver.js';

export type OpenHsmOptions = Pkcs11DriverOptions & FakeDriverOptions;

export async function openHsm(uri: string, options: OpenHsmOptions = {}): Promise<HsmDriver> {
  const parsed = parseHsmUri(uri);
  if (parsed.scheme === 'fake') return FakeDriver.open(parsed, options);
  return Pkcs11Driver.open(parsed, options);
}
