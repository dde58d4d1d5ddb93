package polaris

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/testenv"
)

// The methods below play an operator at the Polaris web console: they call
// the console's own HTTP API (/config/v1, the API Polaris' console page
// calls) as the built-in administrator, in the namespace Nacos' public
// namespace maps to. They fail the test on any error.
//
// Why not a nacos-sdk-go client: the released nacos-sdk-go v2.3.2 has data
// races in its connection handling (upstream issues #741, #905, #908) that
// the race detector can report even for a client closed before its server
// goes away. graylane builds a patched copy (third_party/nacos-sdk-go), but
// a test's operator should be what an operator uses, and Polaris' console
// is that.
// Why not Nacos' v1 HTTP open API: Polaris trims leading and trailing
// whitespace from content published over it, so "a: 1\n" would come back
// as "a: 1". The console API stores content exactly.

// adminToken is the token of Polaris' built-in administrator "polaris",
// which a fresh store creates; Polaris' own integration tests use it
// (test/integrate/http/client.go in polaris v1.18.1).
const adminToken = "nu/0WRA4EqSR1FagrjRj0fZwPXuGlMpX+zCuWu4uMqy8xr1vRjisSbA25aAC3mtU8MeeRsKhQiDAynUR09I="

// consoleNamespace is the Polaris namespace of Nacos' public namespace.
const consoleNamespace = "default"

// codeSuccess is the code of a Polaris API response that succeeded.
const codeSuccess = 200000

// consoleTimeout bounds one console request; a loaded test machine can
// take seconds to answer.
const consoleTimeout = 10 * time.Second

// consoleResponse is the part of a Polaris config API response the
// console reads.
type consoleResponse struct {
	Code              int    `json:"code"`
	Info              string `json:"info"`
	ConfigFileRelease *struct {
		Content string `json:"content"`
	} `json:"configFileRelease"`
}

// consoleCall sends one console API request and decodes the response; a
// code other than success is an error naming the code and Polaris' text.
func (s *Server) consoleCall(method, path string, query url.Values, body any) (consoleResponse, error) {
	var resp consoleResponse
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return resp, err
		}
		rd = bytes.NewReader(b)
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(s.Host(), strconv.Itoa(s.ports.HTTP)), Path: "/config/v1" + path, RawQuery: query.Encode()}
	ctx, cancel := context.WithTimeout(context.Background(), consoleTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return resp, err
	}
	req.Header.Set("X-Polaris-Token", adminToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return resp, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return resp, err
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return resp, fmt.Errorf("HTTP %d, undecodable body %q: %w", res.StatusCode, raw, err)
	}
	if resp.Code != codeSuccess {
		return resp, fmt.Errorf("code %d: %s", resp.Code, resp.Info)
	}
	return resp, nil
}

// console runs one console request, retrying for up to consoleTimeout
// (Polaris answers requests that arrive while its caches load with an
// error code), and fails the test with the last error.
func (s *Server) console(t testing.TB, what, method, path string, query url.Values, body any) consoleResponse {
	t.Helper()
	var resp consoleResponse
	testenv.Eventually(t, consoleTimeout, "polaris console: "+what, func() error {
		var err error
		resp, err = s.consoleCall(method, path, query, body)
		return err
	})
	return resp
}

// PublishConfig creates or updates dataID in group with content (format
// yaml) and releases it, exactly as given, as the console's "save and
// publish" does.
func (s *Server) PublishConfig(t testing.TB, group, dataID, content string) {
	t.Helper()
	s.console(t, "publish "+group+"/"+dataID, http.MethodPost, "/configfiles/createandpub", nil, map[string]string{
		"namespace": consoleNamespace, "group": group, "file_name": dataID, "content": content, "format": "yaml",
	})
}

// GetConfig reads the released content of dataID in group, which is what
// Nacos clients are served; ok is false when it does not exist (or is
// empty, which Nacos cannot store). Like every read from Polaris it may
// lag a write by about a second.
func (s *Server) GetConfig(t testing.TB, group, dataID string) (content string, ok bool) {
	t.Helper()
	resp := s.console(t, "get "+group+"/"+dataID, http.MethodGet, "/configfiles/release", url.Values{
		"namespace": {consoleNamespace}, "group": {group}, "file_name": {dataID},
	}, nil)
	if resp.ConfigFileRelease == nil {
		return "", false
	}
	return resp.ConfigFileRelease.Content, resp.ConfigFileRelease.Content != ""
}

// DeleteConfig deletes dataID in group and its releases (deleting a
// missing one is fine).
func (s *Server) DeleteConfig(t testing.TB, group, dataID string) {
	t.Helper()
	s.console(t, "delete "+group+"/"+dataID, http.MethodDelete, "/configfiles", url.Values{
		"namespace": {consoleNamespace}, "group": {group}, "name": {dataID},
	}, nil)
}
