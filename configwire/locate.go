package configwire

import (
	"fmt"
	"path"
	"strings"

	"github.com/graylane/graylane/configsync"
	"github.com/graylane/graylane/spec"
)

// Where the copy of a file bound to release identity X lives, one
// mechanism on every centre — the instance presents X, the centre serves
// the copy bound to X, else the stable file:
//
//	etcd    key  <stable key>@X                         /config/shop/app.yaml@v2
//	nacos   dataId <stable dataId base>-X<.ext>, same   shop-app-v2.yaml
//	        group and namespace ('+' in X becomes '_')
//	apollo  the stable namespace's gray branch, rule    label v2 -> branch items
//	        {clientAppId: appId, clientLabelList: [X]}

// StableLocation renders a target's location of one file of app.
func StableLocation(app string, t *spec.ConfigTarget, file string) (configsync.Location, error) {
	switch {
	case t.Etcd != nil:
		k, err := t.RenderEtcd(app, file)
		if err != nil {
			return configsync.Location{}, fmt.Errorf("etcd key of %s: %w", file, err)
		}
		return configsync.Location{Key: k}, nil
	case t.Nacos != nil:
		n, err := t.RenderNacos(app, file)
		if err != nil {
			return configsync.Location{}, fmt.Errorf("nacos location of %s: %w", file, err)
		}
		return configsync.Location{Namespace: n.Namespace, Group: n.Group, DataID: n.DataID}, nil
	case t.Apollo != nil:
		a, err := t.RenderApollo(app, file)
		if err != nil {
			return configsync.Location{}, fmt.Errorf("apollo location of %s: %w", file, err)
		}
		return configsync.Location{AppID: a.AppID, Cluster: a.Cluster, Namespace: a.Namespace, Key: a.Key}, nil
	}
	return configsync.Location{}, fmt.Errorf("target has no centre")
}

// GrayLocation returns where the copy of a file bound to identity lives,
// given the file's stable location: its own location (etcd, nacos) or the
// stable location with a client label (apollo).
func GrayLocation(centre string, stable configsync.Location, identity string) (configsync.Location, string) {
	switch centre {
	case "etcd":
		stable.Key += "@" + identity
		return stable, ""
	case "nacos":
		stable.DataID = NacosGrayDataID(stable.DataID, identity)
		return stable, ""
	default:
		return stable, identity
	}
}

// NacosGrayDataID is the dataId of the copy bound to identity: the
// identity inserted before the extension, Spring Cloud Alibaba's profile
// convention (shop.yaml -> shop-v2.yaml). Nacos does not accept '+' in a
// dataId, so it becomes '_'.
func NacosGrayDataID(dataID, identity string) string {
	id := strings.ReplaceAll(identity, "+", "_")
	ext := path.Ext(dataID)
	if ext == "" || ext == dataID {
		return dataID + "-" + id
	}
	return strings.TrimSuffix(dataID, ext) + "-" + id + ext
}
