package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// newProbe is `graylane probe`: GET a URL of graylane (by default the
// --server's /readyz) and exit 0 on a 2xx answer. It is the exec-form
// HEALTHCHECK of graylane's FROM scratch image, which has no shell or curl.
func newProbe() *cobra.Command {
	var path string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Exit 0 when graylane's /readyz (or --path) answers 2xx: a container health check",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			server, _ := cmd.Flags().GetString("server")
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+path, nil)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				return fmt.Errorf("%s%s: %s: %s", server, path, resp.Status, body)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "path", "/readyz", "path to GET on --server")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "bound on the request")
	return cmd
}
