// What the container suites share: the engine settings our machines need, the check that an
// engine and the images are there, and the rule for when they are not (skip with one clear line,
// or fail under CONTAINERS_REQUIRED=1).

import { describe } from 'vitest';
import { ImageName, getContainerRuntimeClient } from 'testcontainers';
import { skipOrRequire } from './requirement.js';

// No Ryuk (testcontainers' reaper is a Docker Hub image; the suites stop their containers), and
// no lookup of the engine's `bridge` network, which engines started with --bridge=none lack.
// Every container uses host networking (or none) and publishes no ports.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= 'localhost';

/** An image a suite needs, and how to build it when it is missing. */
export interface NeededImage {
  readonly image: string;
  readonly build: string;
}

/** Why the suite cannot run here (no engine, an image missing), or undefined when it can. */
export async function containersUnavailable(images: readonly NeededImage[]): Promise<string | undefined> {
  let client;
  try {
    client = await getContainerRuntimeClient();
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    return `no container engine reachable (${why}); set DOCKER_HOST`;
  }
  for (const { image, build } of images) {
    if (!(await client.image.exists(ImageName.fromString(image)))) return `image ${image} not built (${build})`;
  }
  return undefined;
}

/**
 * Declares the suite when containers can run; otherwise a skipped suite saying why, or, with
 * CONTAINERS_REQUIRED=1 (CI), a failing one.
 */
export function describeContainers(reason: string | undefined, title: string, body: () => void): void {
  if (reason === undefined) {
    describe(title, body);
  } else {
    skipOrRequire(title, 'CONTAINERS_REQUIRED', reason);
  }
}
