import manifest from '../package.json' with { type: 'json' };

/**
 * The version of this package, which the User-Agent names. Read from package.json here; the
 * build writes dist/version.js with the version alone, so that no bundle carries the manifest.
 */
export const packageVersion: string = manifest.version;
