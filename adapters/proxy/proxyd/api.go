package proxyd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/spec"
)

// Schema identifies version 1 of the control API's bodies.
const Schema = "graylane.proxyd/v1"

// health is GET /v1/health.
type health struct {
	Schema  string `json:"schema"`
	PID     int    `json:"pid"`
	Version string `json:"version"`
	Apps    int    `json:"apps"`
}

// updateBody is PUT /v1/apps/{app}'s request.
type updateBody struct {
	Schema string       `json:"schema"`
	Update proxy.Update `json:"update"`
}

// updateResult is PUT /v1/apps/{app}'s answer: the routes after the update
// and the error of a listen that failed (the rest was applied).
type updateResult struct {
	Schema string       `json:"schema"`
	Routes proxy.Routes `json:"routes"`
	Error  string       `json:"error,omitempty"`
}

type routesBody struct {
	Schema string       `json:"schema"`
	Routes proxy.Routes `json:"routes"`
}

type appsBody struct {
	Schema string   `json:"schema"`
	Apps   []string `json:"apps"`
}

type inflightBody struct {
	Schema   string `json:"schema"`
	InFlight int    `json:"inflight"`
}

type errorBody struct {
	Schema string `json:"schema"`
	Error  string `json:"error"`
}

// Handler serves the control API over dp. version is reported by
// /v1/health (graylane logs a proxy that runs another build).
func Handler(dp proxy.DataPlane, version string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		apps, err := dp.Apps(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, health{Schema: Schema, PID: os.Getpid(), Version: version, Apps: len(apps)})
	})
	mux.HandleFunc("GET /v1/apps", func(w http.ResponseWriter, r *http.Request) {
		apps, err := dp.Apps(r.Context())
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, appsBody{Schema: Schema, Apps: apps})
	})
	mux.HandleFunc("GET /v1/apps/{app}", func(w http.ResponseWriter, r *http.Request) {
		rt, err := dp.Routes(r.Context(), r.PathValue("app"))
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, routesBody{Schema: Schema, Routes: rt})
	})
	mux.HandleFunc("PUT /v1/apps/{app}", func(w http.ResponseWriter, r *http.Request) {
		var body updateBody
		dec := json.NewDecoder(io.LimitReader(r.Body, 8<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			fail(w, fmt.Errorf("update body: %v: %w", err, spec.ErrInvalid))
			return
		}
		if body.Schema != Schema {
			fail(w, fmt.Errorf("update body: schema %q, this proxy reads %q: %w", body.Schema, Schema, spec.ErrInvalid))
			return
		}
		rt, err := dp.Update(r.Context(), r.PathValue("app"), body.Update)
		if err != nil && rt.App == "" {
			fail(w, err)
			return
		}
		res := updateResult{Schema: Schema, Routes: rt}
		if err != nil {
			res.Error = err.Error()
		}
		reply(w, res)
	})
	mux.HandleFunc("GET /v1/apps/{app}/inflight", func(w http.ResponseWriter, r *http.Request) {
		n, err := dp.InFlight(r.Context(), r.PathValue("app"), r.URL.Query().Get("addr"))
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, inflightBody{Schema: Schema, InFlight: n})
	})
	mux.HandleFunc("DELETE /v1/apps/{app}", func(w http.ResponseWriter, r *http.Request) {
		if err := dp.Forget(r.Context(), r.PathValue("app")); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// fail maps errors to statuses: unknown app 404, invalid input 400, else 500.
func fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, proxy.ErrUnknownApp):
		status = http.StatusNotFound
	case errors.Is(err, spec.ErrInvalid):
		status = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Schema: Schema, Error: err.Error()})
}
