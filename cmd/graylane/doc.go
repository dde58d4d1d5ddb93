// Command graylane is graylane's server and CLI.
//
//	graylane serve [--config graylane.yaml]     run the control loop and the API
//	graylane set-version APP VERSION [--wait]   write a new desired version to the config centre
//	graylane status APP [--watch]               show an app's release
//	graylane apps                               list apps
//	graylane promote|promote-full|pause|resume|abort|rollback APP
//	graylane apply -f release.yaml              write a whole release spec
//
// Configuration is read only here, with viper: a config file, environment
// variables GRAYLANE_<KEY> with "." replaced by "_" (GRAYLANE_HTTP_ADDR),
// and flags. See README.md for every key.
package main
