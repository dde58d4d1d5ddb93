package console

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var dist embed.FS

// csp allows only graylane's own origin: scripts and styles from the
// embedded files (CodeMirror and uPlot set element styles, hence
// 'unsafe-inline' for styles only), API calls and the event streams to
// the same origin, no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the console: files under /assets/ (content-hashed
// names, cached for a year), other files of dist/ by name, and index.html
// for every other path (the console's own routes: /, /apps/{app}, /login).
// Compressible files are sent gzipped to browsers that accept it.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded at build time: it is always there
	}
	return &handler{files: sub, gz: map[string][]byte{}}
}

type handler struct {
	files fs.FS
	mu    sync.Mutex
	gz    map[string][]byte
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")

	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	data, err := fs.ReadFile(h.files, name)
	switch {
	case err == nil && name != "" && name != "index.html":
		if strings.HasPrefix(name, "assets/") {
			hd.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			hd.Set("Cache-Control", "public, max-age=3600")
		}
	case strings.HasPrefix(name, "assets/") || (path.Ext(name) != "" && err != nil):
		http.NotFound(w, r)
		return
	default:
		// a console route: the page itself, never cached, so a new
		// graylane's assets are picked up at once
		name = "index.html"
		if data, err = fs.ReadFile(h.files, name); err != nil {
			http.Error(w, "console not built", http.StatusInternalServerError)
			return
		}
		hd.Set("Cache-Control", "no-cache")
	}
	ctype := mimeOf(name)
	hd.Set("Content-Type", ctype)
	hd.Set("Vary", "Accept-Encoding")
	if len(data) > 1024 && compressible(ctype) && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		data = h.gzipped(name, data)
		hd.Set("Content-Encoding", "gzip")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func (h *handler) gzipped(name string, data []byte) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if z, ok := h.gz[name]; ok {
		return z
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	_, _ = zw.Write(data)
	_ = zw.Close()
	h.gz[name] = b.Bytes()
	return h.gz[name]
}

func mimeOf(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".json":
		return "application/json"
	case ".woff2":
		return "font/woff2"
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "image/svg") || strings.HasPrefix(ctype, "application/json")
}
