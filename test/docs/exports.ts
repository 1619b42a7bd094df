// The package's subpath exports and the src/ module each is built from, for the docs' tests: `npm run build` compiles
// tsconfig.build.json's rootDir (src) into its outDir (dist), so an export's `./dist/x.js` is built from `src/x.ts`.
import { readFileSync } from "node:fs";

const root = new URL("../../", import.meta.url);
const read = (path: string) => JSON.parse(readFileSync(new URL(path, root), "utf8"));

export interface SubpathExport {
  /** As package.json names it: ".", "./hono", "./inertia/react" … */
  subpath: string;
  /** What an application imports: "upkeep", "upkeep/hono" … */
  specifier: string;
  /** The module it is built from, relative to the repository: "src/index.ts" … */
  source: string;
}

export function subpathExports(): SubpathExport[] {
  const { name, exports } = read("package.json") as { name: string; exports: Record<string, { default: string }> };
  const { rootDir, outDir } = (read("tsconfig.build.json") as { compilerOptions: { rootDir: string; outDir: string } })
    .compilerOptions;
  return Object.entries(exports).map(([subpath, target]) => {
    const built = target.default.replace(/^\.\//, "");
    if (!built.startsWith(`${outDir}/`)) throw new Error(`${subpath} is not built into ${outDir}/: ${built}`);
    return {
      subpath,
      specifier: subpath === "." ? name : `${name}${subpath.slice(1)}`,
      source: `${rootDir}/${built.slice(outDir.length + 1).replace(/\.js$/, ".ts")}`,
    };
  });
}

/** The absolute URL of a source path, for import(). */
export function sourceUrl(source: string): string {
  return new URL(source, root).href;
}
