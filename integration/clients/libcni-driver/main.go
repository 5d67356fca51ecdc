// libcni-driver drives CNI plugins through libcni exactly as a container
// runtime does (CRI-O, containerd and Podman's CNI backend all embed libcni),
// so the plugins under test are exercised by code nobody in this project
// wrote. It is built by the root tests in integration/tests/clients.rs with
// Debian's golang-go and golang-github-appc-cni-dev in GOPATH mode.
//
// Usage:
//
//	libcni-driver -plugin-dir DIR[:DIR...] -cache-dir DIR -config FILE \
//	    -id CONTAINERID -netns PATH [-ifname eth0] [-args K=V;K=V] add|check|del
//
// A FILE ending in .conflist is read with libcni.ConfListFromBytes, anything
// else as a single network config with libcni.ConfFromBytes and
// libcni.ConfListFromConf (how runtimes load a CNI config directory). On
// success "add" prints the result JSON on stdout; "check" and "del" print
// nothing. On failure the error goes to stderr and the exit status is 1
// (2 for a usage error).
package main

import (
	"context"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	pluginDirs := flag.String("plugin-dir", "", "colon-separated plugin directories (CNI_PATH)")
	cacheDir := flag.String("cache-dir", "", "libcni's result cache directory (instead of /var/lib/cni)")
	configFile := flag.String("config", "", "network config (.conf) or config list (.conflist)")
	containerID := flag.String("id", "", "container ID")
	netns := flag.String("netns", "", "network namespace path")
	ifname := flag.String("ifname", "eth0", "interface name inside the container")
	cniArgs := flag.String("args", "", "CNI_ARGS as K=V;K=V")
	flag.Parse()
	if flag.NArg() != 1 || *pluginDirs == "" || *cacheDir == "" || *configFile == "" || *containerID == "" {
		fmt.Fprintln(os.Stderr, "usage: libcni-driver -plugin-dir DIRS -cache-dir DIR -config FILE -id ID -netns PATH [-ifname IF] [-args K=V;...] add|check|del")
		os.Exit(2)
	}

	list, err := loadList(*configFile)
	if err != nil {
		fail(err)
	}
	args, err := parseArgs(*cniArgs)
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(*pluginDirs), *cacheDir, nil)
	rt := &libcni.RuntimeConf{
		ContainerID: *containerID,
		NetNS:       *netns,
		IfName:      *ifname,
		Args:        args,
	}

	ctx := context.Background()
	switch verb := flag.Arg(0); verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		if err := result.Print(); err != nil {
			fail(err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown verb %q (want add, check or del)\n", verb)
		os.Exit(2)
	}
}

// loadList reads a config file the way runtimes do: by its extension.
func loadList(path string) (*libcni.NetworkConfigList, error) {
	bytes, err := ioutil.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(path, ".conflist") {
		return libcni.ConfListFromBytes(bytes)
	}
	conf, err := libcni.ConfFromBytes(bytes)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}

// parseArgs splits "K=V;K=V" into libcni's RuntimeConf.Args pairs.
func parseArgs(s string) ([][2]string, error) {
	var pairs [][2]string
	if s == "" {
		return pairs, nil
	}
	for _, item := range strings.Split(s, ";") {
		kv := strings.SplitN(item, "=", 2)
		if len(kv) != 2 {
			return nil, fmt.Errorf("invalid CNI_ARGS item %q (want K=V)", item)
		}
		pairs = append(pairs, [2]string{kv[0], kv[1]})
	}
	return pairs, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
