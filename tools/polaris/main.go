package main

import (
	_ "go.uber.org/automaxprocs"

	"github.com/polarismesh/polaris/cmd"

	// The plugin set of polaris@v1.18.1/plugin.go, unchanged.
	_ "github.com/polarismesh/polaris/apiserver/eurekaserver"
	_ "github.com/polarismesh/polaris/apiserver/grpcserver/config"
	_ "github.com/polarismesh/polaris/apiserver/grpcserver/discover"
	_ "github.com/polarismesh/polaris/apiserver/httpserver"
	_ "github.com/polarismesh/polaris/apiserver/l5pbserver"
	_ "github.com/polarismesh/polaris/apiserver/nacosserver"
	_ "github.com/polarismesh/polaris/apiserver/xdsserverv3"
	_ "github.com/polarismesh/polaris/auth/defaultauth"
	_ "github.com/polarismesh/polaris/cache"
	_ "github.com/polarismesh/polaris/cache/auth"
	_ "github.com/polarismesh/polaris/cache/client"
	_ "github.com/polarismesh/polaris/cache/config"
	_ "github.com/polarismesh/polaris/cache/namespace"
	_ "github.com/polarismesh/polaris/cache/service"
	_ "github.com/polarismesh/polaris/config/interceptor"
	_ "github.com/polarismesh/polaris/plugin/cmdb/memory"
	_ "github.com/polarismesh/polaris/plugin/crypto/aes"
	_ "github.com/polarismesh/polaris/plugin/discoverevent/local"
	_ "github.com/polarismesh/polaris/plugin/healthchecker/leader"
	_ "github.com/polarismesh/polaris/plugin/healthchecker/memory"
	_ "github.com/polarismesh/polaris/plugin/healthchecker/redis"
	_ "github.com/polarismesh/polaris/plugin/history/logger"
	_ "github.com/polarismesh/polaris/plugin/password"
	_ "github.com/polarismesh/polaris/plugin/ratelimit/token"
	_ "github.com/polarismesh/polaris/plugin/statis/logger"
	_ "github.com/polarismesh/polaris/plugin/statis/prometheus"
	_ "github.com/polarismesh/polaris/plugin/whitelist"
	_ "github.com/polarismesh/polaris/service/interceptor"
	_ "github.com/polarismesh/polaris/store/boltdb"
	_ "github.com/polarismesh/polaris/store/mysql"
)

// main is polaris@v1.18.1's main: cobra's root command ("start -c conf").
func main() {
	cmd.Execute()
}
