#!/usr/bin/env node
import { main } from '../dist/src/cli/stria.js';
await main(process.argv);
