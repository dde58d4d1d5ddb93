package configwire

import "time"

// Report is what an instance answers at config.reportPath
// (sdk/config.Loader.Handler serves it): the config it actually loaded.
type Report struct {
	App string `json:"app,omitempty"`
	// Identity is the release identity the instance runs as (its version).
	Identity string `json:"identity"`
	// Checksum is the BundleDigest of the files loaded; "" when a file is
	// missing or the instance's sources disagree.
	Checksum string `json:"checksum"`
	// Files maps each file to the SHA-256 of its canonical content.
	Files map[string]string `json:"files,omitempty"`
	// Sources reports each centre the instance reads, when it reads several.
	Sources  []SourceReport `json:"sources,omitempty"`
	LoadedAt time.Time      `json:"loadedAt"`
	Error    string         `json:"error,omitempty"`
}

// SourceReport is what one centre gave an instance.
type SourceReport struct {
	Centre   string `json:"centre"`
	Checksum string `json:"checksum,omitempty"`
	// Gray lists the files read from a version-bound copy.
	Gray  []string `json:"gray,omitempty"`
	Error string   `json:"error,omitempty"`
}
