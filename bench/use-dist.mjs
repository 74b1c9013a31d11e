// `node --import ./use-dist.mjs`: workspace packages run from their dist/ (bench/dist-hooks.mjs).
import { register } from 'node:module'

register('./dist-hooks.mjs', import.meta.url)
