#!/usr/bin/env node
import { main } from '../dist/src/cli/lctl.js';
await main(process.argv);
