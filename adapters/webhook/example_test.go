package webhook_test

import (
	"fmt"

	"github.com/graylane/graylane/adapters/webhook"
	"github.com/graylane/graylane/traffic"
)

// The idempotency key depends only on the desired state; the signature is
// HMAC-SHA256 over "timestamp.body" (the same as
// printf %s '1795300000.{"app":"demo"}' | openssl dgst -sha256 -hmac key).
func ExampleSign() {
	a := webhook.IdempotencyKey("demo", "v2", traffic.Replicas{"v1": 3, "v2": 1})
	b := webhook.IdempotencyKey("demo", "v2", traffic.Replicas{"v2": 1, "v1": 3, "v0": 0})
	fmt.Println(a == b)
	fmt.Println(webhook.Sign([]byte("key"), "1795300000", []byte(`{"app":"demo"}`)))
	// Output:
	// true
	// sha256=688015c2cf2e72993bdccb691e2842a920268b629e2d0f939361c5d325fca6d1
}
