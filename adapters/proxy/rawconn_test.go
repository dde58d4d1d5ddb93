package proxy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection; the first is
// wrapped in a rawConn.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			acc <- nil
			return
		}
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-acc
	if peer == nil {
		t.Fatal("accept failed")
	}
	raw := newRawConn(c)
	if _, ok := raw.(*rawConn); !ok {
		t.Fatalf("newRawConn(%T) did not wrap a TCP connection", c)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return raw, peer
}

// A write larger than the socket buffers waits for the peer (EAGAIN, then
// the poller) and arrives whole, in order; reads see the peer's bytes and
// then EOF.
func TestRawConnLargeWriteAndEOF(t *testing.T) {
	raw, peer := tcpPair(t)
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		chunk := make([]byte, 1500)
		for buf.Len() < len(payload) {
			n, err := peer.Read(chunk) // slowly, so the writer meets a full buffer
			buf.Write(chunk[:n])
			if err != nil {
				break
			}
		}
		got <- buf.Bytes()
	}()
	if n, err := raw.Write(payload); err != nil || n != len(payload) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(payload))
	}
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("the peer read %d bytes, not the %d written, or not in order", len(b), len(payload))
	}

	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	b, err := io.ReadAll(raw)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadAll = %q, %v; want \"hello\" and EOF", b, err)
	}
}

// A read deadline ends a read that waits, as a timeout.
func TestRawConnReadDeadline(t *testing.T) {
	raw, _ := tcpPair(t)
	raw.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := raw.Read(make([]byte, 16))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline = %v; want a timeout", err)
	}
}

// Writing to a connection the peer reset fails instead of hanging.
func TestRawConnWriteToClosedPeer(t *testing.T) {
	raw, peer := tcpPair(t)
	peer.(*net.TCPConn).SetLinger(0) // RST on close
	peer.Close()
	raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = raw.Write(make([]byte, 64<<10))
	}
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("writes to a reset connection: %v; want a write error", err)
	}
}
