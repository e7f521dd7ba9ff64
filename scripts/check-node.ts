// Fails fast when an npm script is not running on Node 24 (the project pins it through the
// `node` devDependency, whose binary npm puts first on PATH for every script).
const major = Number(process.versions.node.split(".")[0]);
if (major !== 24) {
  console.error(
    `streamfleet needs Node 24 LTS, but npm scripts are running on ${process.version}. ` +
      "Run `npm ci` so that node_modules/.bin/node (Node 24) is installed, then use `npm run ...`.",
  );
  process.exit(1);
}
