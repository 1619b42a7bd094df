// For TypeScript: a .svelte file's default export is a component (Svelte's project templates write the same).
declare module "*.svelte" {
  import type { Component } from "svelte";

  const component: Component<any>;
  export default component;
}
