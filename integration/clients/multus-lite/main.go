// multus-lite is test code only: a delegating meta-plugin that does what
// Multus does for a pod with several networks, on Debian's libcni
// (pkg/invoke, pkg/skel). Its config lists full network configs under
// "delegates"; delegate i gets CNI_IFNAME eth0 for i = 0 and net<i> after,
// with the rest of the environment (CNI_ARGS included) passed on as it came.
// ADD returns the first delegate's result; CHECK hands every delegate the
// result its ADD returned (kept under "cacheDir") as prevResult; DEL runs
// the delegates in reverse order, carries on past failures and reports the
// first. A failed ADD deletes the delegates added before it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

type netConf struct {
	types.NetConf
	Delegates []map[string]interface{} `json:"delegates"`
	CacheDir  string                   `json:"cacheDir"`
}

// delegate is one entry of "delegates", ready to run.
type delegate struct {
	plugin string
	ifname string
	conf   map[string]interface{}
}

func load(stdin []byte) (*netConf, []delegate, error) {
	conf := &netConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, nil, fmt.Errorf("parse config: %v", err)
	}
	if len(conf.Delegates) == 0 || conf.CacheDir == "" {
		return nil, nil, errors.New("config needs \"delegates\" and \"cacheDir\"")
	}
	var delegates []delegate
	for i, d := range conf.Delegates {
		if _, ok := d["cniVersion"]; !ok {
			d["cniVersion"] = conf.CNIVersion
		}
		plugin, _ := d["type"].(string)
		ifname := "eth0"
		if i > 0 {
			ifname = fmt.Sprintf("net%d", i)
		}
		delegates = append(delegates, delegate{plugin: plugin, ifname: ifname, conf: d})
	}
	return conf, delegates, nil
}

func cachePath(conf *netConf, containerID string, d delegate) string {
	return filepath.Join(conf.CacheDir, containerID+"-"+d.ifname+".json")
}

func run(d delegate, command string, prevResult json.RawMessage) (types.Result, error) {
	if err := os.Setenv("CNI_IFNAME", d.ifname); err != nil {
		return nil, err
	}
	conf := map[string]interface{}{}
	for k, v := range d.conf {
		conf[k] = v
	}
	if prevResult != nil {
		conf["prevResult"] = prevResult
	}
	bytes, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	switch command {
	case "ADD":
		return invoke.DelegateAdd(ctx, d.plugin, bytes, nil)
	case "CHECK":
		return nil, invoke.DelegateCheck(ctx, d.plugin, bytes, nil)
	default:
		return nil, invoke.DelegateDel(ctx, d.plugin, bytes, nil)
	}
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, delegates, err := load(args.StdinData)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(conf.CacheDir, 0o700); err != nil {
		return err
	}
	var first types.Result
	for i, d := range delegates {
		result, err := run(d, "ADD", nil)
		if err == nil {
			var saved []byte
			if saved, err = json.Marshal(result); err == nil {
				err = os.WriteFile(cachePath(conf, args.ContainerID, d), saved, 0o600)
			}
		}
		if err != nil {
			for j := i - 1; j >= 0; j-- {
				_, _ = run(delegates[j], "DEL", nil)
				_ = os.Remove(cachePath(conf, args.ContainerID, delegates[j]))
			}
			return fmt.Errorf("delegate %d (%s, %s): %v", i, d.plugin, d.ifname, err)
		}
		if i == 0 {
			first = result
		}
	}
	converted, err := first.GetAsVersion(conf.CNIVersion)
	if err != nil {
		return err
	}
	return converted.Print()
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, delegates, err := load(args.StdinData)
	if err != nil {
		return err
	}
	for i, d := range delegates {
		saved, err := os.ReadFile(cachePath(conf, args.ContainerID, d))
		if err != nil {
			return fmt.Errorf("delegate %d: no cached result: %v", i, err)
		}
		if _, err := run(d, "CHECK", saved); err != nil {
			return fmt.Errorf("delegate %d (%s, %s): %v", i, d.plugin, d.ifname, err)
		}
	}
	return nil
}

func cmdDel(args *skel.CmdArgs) error {
	conf, delegates, err := load(args.StdinData)
	if err != nil {
		return err
	}
	var first error
	for i := len(delegates) - 1; i >= 0; i-- {
		d := delegates[i]
		if _, err := run(d, "DEL", nil); err != nil && first == nil {
			first = fmt.Errorf("delegate %d (%s, %s): %v", i, d.plugin, d.ifname, err)
		}
		_ = os.Remove(cachePath(conf, args.ContainerID, d))
	}
	return first
}

func main() {
	skel.PluginMain(cmdAdd, cmdCheck, cmdDel, version.All, "multus-lite: test-only delegating meta-plugin")
}
