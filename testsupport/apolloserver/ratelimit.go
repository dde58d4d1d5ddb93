// Open API rate limiting per token, as Apollo's
// ConsumerAuthenticationFilter does with Guava's RateLimiter.

package apolloserver

import (
	"time"
)

type rateLimiter struct {
	created time.Time
	last    time.Time
	tokens  float64
	qps     float64
}

func (s *Server) allow(token string, qps int) bool {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	now := s.now()
	l := s.limiters[token]
	if l == nil {
		l = &rateLimiter{created: now, last: now, qps: float64(qps)}
		s.limiters[token] = l
	}
	if now.Sub(l.created) <= time.Second {
		return true // 1 s warm-up: every call passes
	}
	l.tokens += now.Sub(l.last).Seconds() * l.qps
	if l.tokens > l.qps {
		l.tokens = l.qps
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	return false
}
