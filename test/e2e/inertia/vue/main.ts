// The Vue 3 fixture app: the real @inertiajs/vue3, made live with one line.
import { createInertiaApp, router } from "@inertiajs/vue3";
import { createApp, h } from "vue";
import { live } from "../../../../src/client/inertia-vue.ts";
import BoardPage from "./BoardPage.vue";
import OtherPage from "./OtherPage.vue";

const pages: Record<string, any> = { Board: BoardPage, Other: OtherPage };

createInertiaApp({
  resolve: (name: string) => pages[name],
  setup({ el, App, props, plugin }: any) {
    createApp({ render: () => h(App, props) })
      .use(plugin)
      .mount(el);
  },
  progress: false,
});
live({ transport: (window as any).__upkeepTransport });
// For the browser tests: Inertia visits made from the page.
(window as any).__router = router;
