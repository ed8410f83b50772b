// The changesets CLI, started as its bin would start it but without the bin's first step:
// @changesets/cli 3's bin.js calls Node 22's module.enableCompileCache(), which Node 20 (the
// project's Node, see .nvmrc) lacks, and so throws; the CLI itself runs on Node 20.
await import('@changesets/cli');
