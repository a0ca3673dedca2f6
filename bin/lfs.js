#!/usr/bin/env node
import { main } from '../dist/src/cli/lfs.js';
await main(process.argv);
