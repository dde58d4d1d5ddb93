package nginxtest_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/graylane/graylane/testsupport/nginxtest"
	"github.com/graylane/graylane/testsupport/testenv"
)

func TestStartReloadStop(t *testing.T) {
	testenv.IntegrationTest(t)
	ngx := nginxtest.Start(t, nginxtest.Options{})
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	conf := fmt.Sprintf("server { listen %s; location / { return 200 \"hello\"; } }\n", addr)
	if err := os.WriteFile(filepath.Join(ngx.IncludeDir, "t.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ngx.Reload(t)
	// The reload is asynchronous: poll until the new server answers.
	testenv.Eventually(t, 5*time.Second, "nginx answers", func() error {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "hello" {
			return fmt.Errorf("got %q", b)
		}
		return nil
	})
	if pid, err := ngx.MasterPIDFromFile(); err != nil || pid != ngx.PID() {
		t.Fatalf("pid file says %d (%v), started %d", pid, err, ngx.PID())
	}
	if err := ngx.Stop(); err != nil {
		t.Fatal(err)
	}
	if ngx.Running() {
		t.Fatal("nginx still running after Stop")
	}
	if _, err := http.Get("http://" + addr + "/"); err == nil {
		t.Fatal("nginx still answering after Stop")
	}
}
