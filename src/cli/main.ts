#!/usr/bin/env node
/** The `winlayer` executable: runs the CLI and sets the exit status. */
import { main } from './cli.js';

process.exitCode = await main(process.argv.slice(2));
