// The convergence oracle's cells on hono (suite.ts): every capture and rendering, a short run each.
import { cellTests } from "./suite.ts";

cellTests("hono");
