package shard

// Owner returns the member with the highest rendezvous score for app
// ("" when there are no members): every replica computes the same answer
// from the same members, and removing a member only moves the apps it
// owned, adding one only takes about 1/N of every other member's.
//
// The score of (member, app) is FNV-1a 64 over member, a zero byte and
// app, finished with MurmurHash3's fmix64 (FNV alone mixes the last bytes
// poorly); a tie goes to the smaller member name.
func Owner(app string, members []string) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		s := Score(m, app)
		if best == "" || s > bestScore || (s == bestScore && m < best) {
			best, bestScore = m, s
		}
	}
	return best
}

// Score is the rendezvous score of app on member.
func Score(member, app string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(member); i++ {
		h ^= uint64(member[i])
		h *= prime
	}
	h *= prime // the separator, a zero byte: h ^= 0
	for i := 0; i < len(app); i++ {
		h ^= uint64(app[i])
		h *= prime
	}
	return fmix64(h)
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
