// Package server is graylane's HTTP API: gin routes under /api/v1 that list
// apps and their status, write release specs and versions to the config
// centre (the source of truth, never straight into the engine), send
// commands, and stream status changes as Server-Sent Events; plus /healthz,
// /readyz and /metrics.
//
// Entry point: New(Config).Handler(). Errors are JSON
// {"error": "...", "field": "..."}; one function (statusOf) maps sentinel
// errors to HTTP status codes.
package server
