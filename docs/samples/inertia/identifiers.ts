// Explicit identifiers: a prop that shows a value capture cannot see (here another service's forecast, kept in memory)
// declares what it depends on, and whoever changes the value touches it. Needs createUpkeep({ identifiers: true }).
import type { Kysely } from "kysely";
import { depends, touch } from "../../../src/index.ts";

const forecasts = new Map<string, string>();

/** A prop (`weather: () => weather(db, "paris")`), or a read in any frame. */
export async function weather(db: Kysely<any>, city: string): Promise<string> {
  await depends(db, `Weather:${city}`);
  return forecasts.get(city) ?? "no forecast yet";
}

/** Where the value changes: store it, then touch its identifier (inside the write's transaction when there is one). */
export async function forecastChanged(db: Kysely<any>, city: string, forecast: string): Promise<void> {
  forecasts.set(city, forecast);
  await touch(db, `Weather:${city}`);
}
