#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (the workspace runs from source; no build step).
import { register } from 'tsx/esm/api'

register()
await import('../src/main.ts')
