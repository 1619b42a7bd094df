// The convergence oracle's cells on express (suite.ts): every capture and rendering, a short run each.
import { cellTests } from "./suite.ts";

cellTests("express");
