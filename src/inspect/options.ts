// The inspector's settings (createUpkeep({ inspect })): apart from inspect/http.ts so that the options type does not
// import the instance that holds it.

export interface InspectOptions {
  /** Who may see the inspector, in any mode (it shows every page's reads and inputs' names, never their values, and
   *  page URLs without their query values). Without it, only development requests from this machine see it. */
  authorize(request: Request): boolean | Promise<boolean>;
  /** How often the page's stream sends a snapshot. Default 1 s. */
  intervalMs?: number;
}
