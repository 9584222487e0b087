#!/usr/bin/env node
// hsm-vault command line.

import { Command } from 'commander';
import { hsmCommands, keyCommands } from './hsm-commands.js';
import { demoCommand } from './demo.js';
import { qualifyCommand } from './qualify.js';
import { serveCommand } from './serve.js';
import { fleetCommands } from './fleet-commands.js';
import { evidenceCommands } from './evidence-commands.js';
import { authCommands } from './auth-commands.js';
import { bundleCommands, logCommands, witnessCommands } from './trust-commands.js';
import { reportError } from './context.js';

const program = new Command('hsm-vault')
  .description('password-protected backup key vault with its secrets inside PKCS#11 tokens')
  .version('0.1.0')
  .showHelpAfterError();

program.addCommand(hsmCommands());
program.addCommand(keyCommands());
program.addCommand(fleetCommands());
program.addCommand(serveCommand());
program.addCommand(authCommands());
program.addCommand(qualifyCommand());
program.addCommand(bundleCommands());
program.addCommand(witnessCommands());
program.addCommand(logCommands());
program.addCommand(evidenceCommands());
program.addCommand(demoCommand());

program.parseAsync(process.argv).catch(reportError);
