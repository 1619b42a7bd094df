// For TypeScript: a .vue file's default export is a component (Vue's project templates write the same).
declare module "*.vue" {
  import type { Component } from "vue";

  const component: Component;
  export default component;
}
