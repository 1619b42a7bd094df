// The convergence oracle's cells on node (suite.ts): every capture and rendering, a short run each.
import { cellTests } from "./suite.ts";

cellTests("node");
