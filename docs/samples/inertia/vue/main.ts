// The browser side with Vue 3: Inertia's own app, made live with one call.
import { createInertiaApp } from "@inertiajs/vue3";
import { createApp, h } from "vue";
import { live } from "../../../../src/client/inertia-vue.ts";
import List from "./List.vue";

const pages: Record<string, any> = { List };

createInertiaApp({
  resolve: (name: string) => pages[name],
  setup({ el, App, props, plugin }: any) {
    createApp({ render: () => h(App, props) })
      .use(plugin)
      .mount(el);
  },
});
live(); // next to createInertiaApp: the props of every page stay live
