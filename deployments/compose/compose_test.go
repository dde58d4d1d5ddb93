package compose

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/dockertest"
	"github.com/graylane/graylane/testsupport/testenv"
)

// graylaneImage imports graylane's image as the Dockerfile builds it (no
// base image can be pulled here, so from a locally built static binary):
// FROM scratch with /graylane (-tags timetzdata), the CA bundle, the
// config file and /tmp.
func graylaneImage(t *testing.T, e *dockertest.Engine, ref string) {
	t.Helper()
	bin, err := dockertest.StaticBinary("./cmd/graylane", "timetzdata")
	if err != nil {
		t.Fatal(err)
	}
	files := []dockertest.File{
		{Path: "graylane", Source: bin},
		{Path: "etc/graylane/graylane.yaml", Source: "graylane.yaml", Mode: 0o644},
	}
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		files = append(files, dockertest.File{Path: "etc/ssl/certs/ca-certificates.crt", Source: "/etc/ssl/certs/ca-certificates.crt", Mode: 0o644})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.ImportImage(ctx, files, []string{`ENTRYPOINT ["/graylane"]`, `CMD ["serve","--config","/etc/graylane/graylane.yaml"]`, "EXPOSE 8080"}, ref); err != nil {
		t.Fatal(err)
	}
}

func compose(t *testing.T, env []string, args ...string) string {
	t.Helper()
	dc := testenv.LookPath(t, "docker-compose")
	cmd := exec.Command(dc, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The single-node stack (docker-compose.yml) comes up on a Docker Engine
// from graylane's image, answers /readyz on the published port, and its
// container health check (graylane probe, exec form) reports healthy.
func TestSingleStackAnswersReadyz(t *testing.T) {
	testenv.IntegrationTest(t)
	e := dockertest.Start(t, dockertest.Options{})
	graylaneImage(t, e, "graylane:test")
	port := testenv.FreePort(t)
	project := "gl" + strconv.Itoa(port)
	env := []string{"DOCKER_HOST=" + e.Host, "GRAYLANE_IMAGE=graylane:test", "GRAYLANE_PORT=" + strconv.Itoa(port),
		"DOCKER_SOCKET=" + strings.TrimPrefix(e.Host, "unix://"), "COMPOSE_PROJECT_NAME=" + project}
	file, _ := filepath.Abs("docker-compose.yml")
	compose(t, env, "-f", file, "up", "-d", "--no-build")
	t.Cleanup(func() { compose(t, env, "-f", file, "down", "-v") })

	logsOnFailure(t, env, "-f", file)
	waitReady(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/readyz", 90*time.Second)
	// the image's own health check: graylane probe, no shell
	id := strings.TrimSpace(compose(t, env, "-f", file, "ps", "-q", "graylane"))
	testenv.Eventually(t, 60*time.Second, "the container healthy", func() error {
		c, err := e.Client().ContainerInspect(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return testenv.Check(c.State.Health != nil && c.State.Health.Status == "healthy", "container health: %+v", c.State.Health)
	})
}

// waitReady waits until url answers 200.
func waitReady(t *testing.T, url string, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, url+" answers 200", func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return testenv.Check(resp.StatusCode == 200, "%s", resp.Status)
	})
}

// logsOnFailure prints the stack's last log lines when the test failed.
func logsOnFailure(t *testing.T, env []string, files ...string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("docker compose logs:\n%s", compose(t, env, append(files, "logs", "--tail", "30")...))
		}
	})
}

// The HA stack (docker-compose.ha.yml): two graylanes on an external etcd
// with leader election both come up and answer /readyz. No etcd image can
// be pulled here, so the etcd service is replaced (a compose override) by
// graylane's image serving its embedded etcd (the same etcd server code)
// on 0.0.0.0:2379, with its own engine on other key prefixes. Both
// graylanes campaign for leadership there and exactly one leads.
func TestHAStackAnswersReadyz(t *testing.T) {
	testenv.IntegrationTest(t)
	e := dockertest.Start(t, dockertest.Options{})
	graylaneImage(t, e, "graylane:test")
	file, _ := filepath.Abs("docker-compose.ha.yml")
	override := filepath.Join(t.TempDir(), "etcd-standin.yml")
	if err := os.WriteFile(override, []byte(`version: "3.8"
services:
  etcd:
    image: graylane:test
    command: ["serve", "--config", "/etc/graylane/graylane.yaml"]
    environment:
      GRAYLANE_ETCD_EMBEDDED_CLIENTADDR: "0.0.0.0:2379"
      GRAYLANE_ETCD_PREFIX: /standin/apps/
      GRAYLANE_ETCD_STATEPREFIX: /standin/state/
      GRAYLANE_DATA_DIR: /etcd-data
`), 0o644); err != nil {
		t.Fatal(err)
	}
	pa, pb := testenv.FreePort(t), testenv.FreePort(t)
	env := []string{"DOCKER_HOST=" + e.Host, "GRAYLANE_IMAGE=graylane:test", "GRAYLANE_PORT_A=" + strconv.Itoa(pa), "GRAYLANE_PORT_B=" + strconv.Itoa(pb),
		"DOCKER_SOCKET=" + strings.TrimPrefix(e.Host, "unix://"), "COMPOSE_PROJECT_NAME=glha" + strconv.Itoa(pa)}
	out := compose(t, env, "-f", file, "-f", override, "config")
	for _, want := range []string{"GRAYLANE_ETCD_ENDPOINTS: http://etcd:2379", `GRAYLANE_HA_ENABLED: "true"`, "GRAYLANE_HA_ID: graylane-b"} {
		if !strings.Contains(out, want) {
			t.Errorf("docker-compose config lacks %q:\n%s", want, out)
		}
	}
	compose(t, env, "-f", file, "-f", override, "up", "-d", "--no-build")
	t.Cleanup(func() { compose(t, env, "-f", file, "-f", override, "down", "-v") })
	logsOnFailure(t, env, "-f", file, "-f", override)
	for _, port := range []int{pa, pb} {
		waitReady(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/readyz", 120*time.Second)
	}
	// both campaign on the shared etcd; exactly one leads
	testenv.Eventually(t, 30*time.Second, "both graylanes campaigning and exactly one leading", func() error {
		logs := compose(t, env, "-f", file, "-f", override, "logs", "graylane-a", "graylane-b")
		return testenv.Check(strings.Count(logs, "campaigning for leadership") >= 2 && strings.Count(logs, "leading: reconciling releases") == 1, "logs:\n%s", logs)
	})
}
