package proxy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/graylane/graylane/adapters/proxy"
	"github.com/graylane/graylane/testsupport/testenv"
)

// rawUpstream answers every request on a kept-alive connection with a
// canned response, parsing only enough to find the end of the request
// head: it allocates nothing per request, so a benchmark's allocs/op are
// the proxy's own.
func rawUpstream(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nv1")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 2 { // the empty line ending the head
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkServerLoop measures one request through the proxy's own
// server loop (the path `graylane proxy` serves): a raw client on a
// kept-alive connection, the routing decision by a sticky header, the
// forward on a kept-alive upstream connection and the response copied
// back. Client and upstream allocate nothing per request.
func BenchmarkServerLoop(b *testing.B) {
	p := proxy.New(proxy.Config{App: "bench"})
	p.SetEndpoints("v1", []string{rawUpstream(b), rawUpstream(b)})
	p.SetEndpoints("v2", []string{rawUpstream(b)})
	mustSplit(b, p, splitOf("v2", 20, "v1", 80))
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	if err := p.Listen(addr); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	var req []byte
	key := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key++
		req = append(req[:0], "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: wrk\r\nAccept: */*\r\nX-Gray-User: user-"...)
		req = strconv.AppendInt(req, int64(key), 10)
		req = append(req, "\r\n\r\n"...)
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
				n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
			if len(line) == 2 {
				break
			}
		}
		if n < 0 {
			b.Fatal("response without Content-Length")
		}
		if _, err := br.Discard(n); err != nil {
			b.Fatal(err)
		}
	}
}
