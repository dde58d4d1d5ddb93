package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// Labels graylane puts on the objects it manages and on their pods.
const (
	// LabelApp names the graylane app. Deployments, pods and Services of an
	// app carry it; graylane's informers watch only objects with it.
	LabelApp = "graylane.io/app"
	// LabelVersion is the code version of a pod (VersionLabel's form: the
	// version itself when it is a valid label value, else a digest).
	LabelVersion = "graylane.io/version"
	// LabelDeployment names the Deployment a pod belongs to; it is part of
	// the selector of every Deployment graylane creates, so Deployments of
	// one app never select each other's pods.
	LabelDeployment = "graylane.io/deployment"
	// LabelServiceRole is "active" or "preview" on the Services of an app.
	LabelServiceRole = "graylane.io/service-role"
)

// Annotations graylane reads and writes.
const (
	// AnnotationManagedBy with value ManagedBy marks an object graylane may
	// change. graylane sets it on what it creates; an operator sets it on an
	// existing Deployment or Service to hand it to graylane. graylane never
	// changes an object without it.
	AnnotationManagedBy = "graylane.io/managed-by"
	// AnnotationCreated marks an object graylane created (and so may
	// delete); objects handed over by an operator are only scaled to zero.
	AnnotationCreated = "graylane.io/created"
	// AnnotationVersion holds the exact code version, on a pod template (so
	// on pods) and on a Deployment.
	AnnotationVersion = "graylane.io/version"
	// AnnotationApplied records, as JSON, the fields of a Deployment or
	// Service graylane last wrote. A live object that differs from it was
	// changed behind graylane's back: drift. Deleting the annotation hands
	// the object back to graylane, which then rewrites it.
	AnnotationApplied = "graylane.io/applied"
	// AnnotationSplit records on the active Service the traffic split the
	// Service router put in force.
	AnnotationSplit = "graylane.io/split"
	// AnnotationContainer and AnnotationPort, on a pod template, name the
	// container whose image follows the version and the port an instance
	// serves on (Instance.Addr).
	AnnotationContainer = "graylane.io/container"
	AnnotationPort      = "graylane.io/port"
)

// ManagedBy is the value of AnnotationManagedBy.
const ManagedBy = "graylane"

// Service roles (LabelServiceRole).
const (
	RoleActive  = "active"
	RolePreview = "preview"
)

var labelValue = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

// VersionLabel returns the value of LabelVersion for a code version: the
// version itself when it is a valid label value (at most 63 characters of
// A-Z a-z 0-9 . _ -, starting and ending with a letter or digit), else
// "sha-" and 16 hex digits of its SHA-256. Pods also carry the exact
// version in AnnotationVersion.
func VersionLabel(version string) string {
	if labelValue.MatchString(version) {
		return version
	}
	return "sha-" + digest(version, 16)
}

// maxSlug bounds the version part of a per-version Deployment name.
const maxSlug = 20

// VersionDeploymentName returns the name of the Deployment that holds one
// version beside the primary one: {deployment}-{slug}, where slug is the
// version lower-cased with every character other than a-z 0-9 turned into
// '-'. When that changed the version (or it is longer than 20), 8 hex
// digits of the version's SHA-256 are appended so that distinct versions
// never share a name: "v2" -> cart-v2, "v1.4.0" -> cart-v1-4-0-3c1f0a9b.
func VersionDeploymentName(deployment, version string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(version) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	slug := strings.Trim(b.String(), "-")
	if slug != version || len(slug) > maxSlug {
		if len(slug) > maxSlug-9 {
			slug = strings.TrimRight(slug[:maxSlug-9], "-")
		}
		if slug == "" {
			slug = digest(version, 8)
		} else {
			slug += "-" + digest(version, 8)
		}
	}
	return deployment + "-" + slug
}

func digest(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}
