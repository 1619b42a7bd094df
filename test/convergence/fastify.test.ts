// The convergence oracle's cells on fastify (suite.ts): every capture and rendering, a short run each.
import { cellTests } from "./suite.ts";

cellTests("fastify");
