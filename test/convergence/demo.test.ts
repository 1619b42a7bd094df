// The convergence oracle's cells on demo (suite.ts): every capture and rendering, a short run each.
import { cellTests } from "./suite.ts";

cellTests("demo");
