// Observation for tests: the last /configs answer per client label and the
// latest release message. Clients see no difference.

package apolloserver

// ConfigRead is the config service's answer to one /configs read, kept for
// tests (LastConfigRead).
type ConfigRead struct {
	// Status is 200 (a release the client did not have), 304 (the client
	// holds the current release) or 404 (nothing released).
	Status int
	// Message is the id of the latest release message, of any key
	// (LatestMessage), when the answer was given: the read saw every
	// release up to it.
	Message int64
}

// observeRead records a /configs answer for LastConfigRead.
func (s *Server) observeRead(appID, cluster, namespace, label string, r ConfigRead) {
	s.readsMu.Lock()
	defer s.readsMu.Unlock()
	s.reads[appID+"\x00"+cluster+"\x00"+namespace+"\x00"+label] = r
}

// LastConfigRead returns the last answer to a /configs read of
// appID/cluster/namespace (as the client spelled them) by a client with
// label ("" when it sent none). A 304 at a Message not below
// LatestMessage is positive proof that the client has every release: an
// agollo client then gets no update, and without a new release nothing
// more arrives for it (it keeps re-reading with the same answer while a
// gray branch it is not selected by holds back its notification id). It
// only observes: what clients see does not change.
func (s *Server) LastConfigRead(appID, cluster, namespace, label string) (ConfigRead, bool) {
	s.readsMu.Lock()
	defer s.readsMu.Unlock()
	r, ok := s.reads[appID+"\x00"+cluster+"\x00"+namespace+"\x00"+label]
	return r, ok
}

// LatestMessage is the id of the latest release message of any key (0
// before the first): the global counter behind every notification id.
func (s *Server) LatestMessage() int64 {
	var id int64
	s.read(func(st *state) { id = st.seqMsg })
	return id
}
