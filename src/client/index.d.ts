export { BACKOFF, backoffCeiling, backoffDelay } from "./backoff.js";
export { ConnectionManager } from "./connection.js";
export { CLIENT_TUNING, WIRE } from "./constants.js";
export { IDLE, transition } from "./state.js";
export declare class UpkeepStreamSource extends HTMLElement {
  connectedCallback(): void;
  disconnectedCallback(): void;
}
