// Import rules for Upkeep's source, checked by `npm run check` (scripts/check-layers.ts).
// TypeScript 7 has no JavaScript API, so dependency-cruiser parses with swc.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "A module must not import itself through others.",
      from: { path: "^src/" },
      to: { circular: true },
    },
  ],
  options: {
    parser: "swc",
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "\\.test\\.ts$" },
  },
};
