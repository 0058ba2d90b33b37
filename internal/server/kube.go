package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/image"
	"github.com/hangar-oss/hangar/internal/router"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/kube"
	"github.com/hangar-oss/hangar/internal/runtime/sandbox"
)

// kubeDriver runs executors as Pods (--driver=kubernetes) and build steps
// in the local sandbox, whose images it ships to the registry.
type kubeDriver struct {
	*kube.Driver
	runtime.StepRunner
	steps *sandbox.Driver
}

// Cleanup removes what an earlier run left: Pods, and build steps.
func (k kubeDriver) Cleanup(ctx context.Context) error {
	return errors.Join(k.Driver.Cleanup(ctx), k.steps.Cleanup(ctx))
}

// localRouter is this process's router as the fleet sees it: with the
// kubernetes driver, the Pod informer's readiness filters them first.
func localRouter(drv Driver, rt *router.Router) (fleet.Router, error) {
	if k, ok := drv.(kubeDriver); ok {
		return k.Endpoints(rt)
	}
	return rt, nil
}

func newKubeDriver(ctx context.Context, cfg config.Config, steps *sandbox.Driver, images *image.Cache, log *slog.Logger) (Driver, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes driver: %w", err)
	}
	reg, insecure := strings.CutPrefix(cfg.Registry, "http://")
	cache := filepath.Join(cfg.ImageCache, "oci")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return nil, err
	}
	pub, err := kube.NewPublisher(kube.PublisherConfig{
		Registry: reg, Insecure: insecure, CacheDir: cache,
		Layers: kubeLayers{steps: steps, images: images},
	})
	if err != nil {
		return nil, err
	}
	d, err := kube.New(ctx, kube.Config{
		Namespace: cfg.K8sNamespace, RuntimeClass: cfg.RuntimeClass, Prefix: cfg.NetworkPrefix, Images: pub,
		ForwardAddr: cfg.K8sForwardAddr,
		Egress:      &runtime.Egress{Allow: cfg.EgressAllow, Deny: cfg.EgressDeny},
	}, rc, log)
	if err != nil {
		return nil, err
	}
	return kubeDriver{Driver: d, StepRunner: steps, steps: steps}, nil
}

// kubeLayers gives the Publisher the sandbox's image of an app: the base,
// the toolchains and the app's setup layer, each keyed by what names its
// content so that its tar is made once.
type kubeLayers struct {
	steps  *sandbox.Driver
	images *image.Cache
}

func (k kubeLayers) Layers(ctx context.Context, img runtime.Image) ([]kube.Layer, error) {
	base, upper, uidBase, binds, err := k.steps.ImageLayers(ctx, img)
	if err != nil {
		return nil, err
	}
	ls := []kube.Layer{{Dir: base, At: "/", Key: "base-" + k.images.BaseKey()}}
	for _, b := range binds {
		switch b.Target {
		case "/opt/hangar/node":
			ls = append(ls, kube.Layer{Dir: b.Source, At: b.Target, Key: "node-" + k.images.NodeKey()})
		default: // the Go toolchain: keyed by its path and version
			v, _ := os.ReadFile(filepath.Join(b.Source, "VERSION"))
			sum := sha256.Sum256([]byte(b.Source + "\n" + string(v)))
			ls = append(ls, kube.Layer{Dir: b.Source, At: b.Target, Key: "tool-" + hex.EncodeToString(sum[:8])})
		}
	}
	if upper != "" {
		ls = append(ls, kube.Layer{Dir: upper, At: "/", Key: "setup-" + img.AppID + "-" + k.images.BaseKey() + "-" + img.Layer, UIDBase: uidBase})
	}
	return ls, nil
}
