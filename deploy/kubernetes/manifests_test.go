// Package kubernetes holds the Kubernetes manifests of a Nimbus cluster
// (docs/operations-kubernetes.md) and the test that checks them: every
// document decodes strictly into its typed API object, and what a
// reviewer would check holds (flags the binary has, probes, selectors,
// the autoscaler's target).
package kubernetes

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"nimbus/internal/auth"
	"nimbus/internal/cli"
)

// manifests is every object of the directory, decoded.
type manifests struct {
	files        []string // the YAML files but kustomization.yaml
	kustomize    kustomization
	statefulSets []appsv1.StatefulSet
	deployments  []appsv1.Deployment
	services     []corev1.Service
	secrets      []corev1.Secret
	namespaces   []corev1.Namespace
	pdbs         []policyv1.PodDisruptionBudget
	hpas         []autoscalingv2.HorizontalPodAutoscaler
}

// kustomization is the part of kustomize's Kustomization these files use;
// a field it does not name fails the strict decode.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// strict decodes one YAML document into v, refusing duplicate keys and
// fields the type does not have.
func strict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(j))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("more than one object in a document")
	}
	return nil
}

// documents splits a YAML stream at its "---" lines, leaving out empty
// documents (comments alone).
func documents(b []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		j, err := yaml.YAMLToJSON([]byte(d))
		if err == nil && string(j) == "null" {
			continue
		}
		out = append(out, []byte(d))
	}
	return out
}

func load(t *testing.T) manifests {
	t.Helper()
	paths, err := filepath.Glob("*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests here: %v", err)
	}
	var m manifests
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if p == "kustomization.yaml" {
			if err := strict(b, &m.kustomize); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			continue
		}
		m.files = append(m.files, p)
		for i, doc := range documents(b) {
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s, document %d: %v", p, i+1, err)
			}
			var into any
			switch meta.APIVersion + " " + meta.Kind {
			case "apps/v1 StatefulSet":
				m.statefulSets = append(m.statefulSets, appsv1.StatefulSet{})
				into = &m.statefulSets[len(m.statefulSets)-1]
			case "apps/v1 Deployment":
				m.deployments = append(m.deployments, appsv1.Deployment{})
				into = &m.deployments[len(m.deployments)-1]
			case "v1 Service":
				m.services = append(m.services, corev1.Service{})
				into = &m.services[len(m.services)-1]
			case "v1 Secret":
				m.secrets = append(m.secrets, corev1.Secret{})
				into = &m.secrets[len(m.secrets)-1]
			case "v1 Namespace":
				m.namespaces = append(m.namespaces, corev1.Namespace{})
				into = &m.namespaces[len(m.namespaces)-1]
			case "policy/v1 PodDisruptionBudget":
				m.pdbs = append(m.pdbs, policyv1.PodDisruptionBudget{})
				into = &m.pdbs[len(m.pdbs)-1]
			case "autoscaling/v2 HorizontalPodAutoscaler":
				m.hpas = append(m.hpas, autoscalingv2.HorizontalPodAutoscaler{})
				into = &m.hpas[len(m.hpas)-1]
			default:
				t.Fatalf("%s, document %d: %s %s is a kind this test does not check", p, i+1, meta.APIVersion, meta.Kind)
			}
			if err := strict(doc, into); err != nil {
				t.Fatalf("%s, document %d (%s): %v", p, i+1, meta.Kind, err)
			}
		}
	}
	return m
}

func TestTheKustomizationListsEveryManifest(t *testing.T) {
	m := load(t)
	if m.kustomize.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.kustomize.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", m.kustomize.APIVersion, m.kustomize.Kind)
	}
	got := slices.Sorted(slices.Values(m.kustomize.Resources))
	if !slices.Equal(got, m.files) {
		t.Errorf("kustomization resources %v, the directory has %v", got, m.files)
	}
	if len(m.namespaces) != 1 || m.namespaces[0].Name != m.kustomize.Namespace {
		t.Errorf("the kustomization's namespace %q is not the Namespace object's", m.kustomize.Namespace)
	}
}

// args parses a container's arguments as the nimbus command they name
// would: an unknown flag or a bad value fails.
func args(t *testing.T, c corev1.Container) (role string, flags map[string]string) {
	t.Helper()
	if len(c.Command) != 0 {
		t.Errorf("container %s overrides the image's entrypoint (nimbus): %q", c.Name, c.Command)
	}
	if len(c.Args) == 0 {
		t.Fatalf("container %s has no arguments", c.Name)
	}
	role = c.Args[0]
	fs, err := cli.CommandFlags(role)
	if err != nil {
		t.Fatalf("container %s: %v", c.Name, err)
	}
	if err := fs.Parse(c.Args[1:]); err != nil {
		t.Fatalf("container %s: nimbus %s refuses its arguments: %v", c.Name, role, err)
	}
	if fs.NArg() != 0 {
		t.Errorf("container %s: nimbus %s takes no arguments, got %q", c.Name, role, fs.Args())
	}
	flags = map[string]string{}
	for _, a := range c.Args[1:] {
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[name] = value
	}
	// Every $(VAR) the kubelet expands must be an env var of the container.
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	for _, a := range c.Args {
		for _, v := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(a, -1) {
			if !env[v[1]] {
				t.Errorf("container %s: %q names $(%s), which it does not define", c.Name, a, v[1])
			}
		}
	}
	return role, flags
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %q", c.Name, name)
	return 0
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	n, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("%q is not HOST:PORT", addr)
	}
	return int32(n)
}

// selects reports whether sel's labels are all in labels.
func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func secretMounted(t *testing.T, pod corev1.PodSpec, c corev1.Container, file string, secrets []corev1.Secret) {
	t.Helper()
	dir, key := filepath.Dir(file), filepath.Base(file)
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != dir {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			for _, s := range secrets {
				if s.Name == v.Secret.SecretName {
					if _, ok := s.StringData[key]; !ok {
						t.Errorf("secret %s has no key %q for %s", s.Name, key, file)
					}
					return
				}
			}
			t.Errorf("%s comes from secret %s, which no manifest defines", file, v.Secret.SecretName)
			return
		}
	}
	t.Errorf("container %s reads %s, which no secret volume is mounted at", c.Name, file)
}

func TestTheServersAreAStatefulSetThatBootstrapsItself(t *testing.T) {
	m := load(t)
	if len(m.statefulSets) != 1 {
		t.Fatalf("%d StatefulSets, want the servers' alone", len(m.statefulSets))
	}
	ss := m.statefulSets[0]
	pod := ss.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("the server pod has %d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	role, flags := args(t, c)
	if role != "server" {
		t.Fatalf("the StatefulSet runs nimbus %s", role)
	}
	if !selects(ss.Spec.Selector.MatchLabels, ss.Spec.Template.Labels) {
		t.Errorf("the selector %v does not select the pods %v", ss.Spec.Selector.MatchLabels, ss.Spec.Template.Labels)
	}
	if ss.Spec.Replicas == nil || strconv.Itoa(int(*ss.Spec.Replicas)) != flags["bootstrap-expect"] {
		t.Errorf("replicas %v, --bootstrap-expect %q: they must agree", ss.Spec.Replicas, flags["bootstrap-expect"])
	}
	if ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Error("the servers must start in parallel: none is ready before the cluster has bootstrapped")
	}
	if flags["node-id"] != "$(POD_NAME)" {
		t.Errorf("--node-id is %q, want the pod's name", flags["node-id"])
	}

	// --join names every replica's stable DNS name through the headless
	// Service, at the API port.
	var headless *corev1.Service
	for i, s := range m.services {
		if s.Name == ss.Spec.ServiceName {
			headless = &m.services[i]
		}
	}
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("the StatefulSet's Service %q must be headless and publish pods not ready", ss.Spec.ServiceName)
	}
	if !selects(headless.Spec.Selector, ss.Spec.Template.Labels) {
		t.Errorf("the headless Service does not select the servers")
	}
	api := containerPort(t, c, "api")
	var want []string
	for i := range int(*ss.Spec.Replicas) {
		want = append(want, fmt.Sprintf("%s-%d.%s:%d", ss.Name, i, headless.Name, api))
	}
	if got := strings.Split(flags["join"], ","); !slices.Equal(got, want) {
		t.Errorf("--join %v, want %v", got, want)
	}
	if portOf(t, flags["listen"]) != api || portOf(t, flags["raft"]) != containerPort(t, c, "internal") {
		t.Errorf("--listen %s and --raft %s are not the container's api and internal ports", flags["listen"], flags["raft"])
	}

	// Probes: readiness and liveness on the API port.
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.ReadinessProbe, "/readyz"}, {c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no HTTP probe for %s", p.path)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || (g.Port.String() != "api" && g.Port.IntValue() != int(api)) {
			t.Errorf("the %s probe asks %s on port %s", p.path, g.Path, g.Port.String())
		}
	}

	// The data directory is a claim of the StatefulSet's.
	var claimed bool
	for _, vm := range c.VolumeMounts {
		for _, vct := range ss.Spec.VolumeClaimTemplates {
			claimed = claimed || (vm.Name == vct.Name && vm.MountPath == flags["data"])
		}
	}
	if !claimed {
		t.Errorf("--data %s is not on a volume claim template", flags["data"])
	}
	secretMounted(t, pod, c, flags["bootstrap-token-file"], m.secrets)

	// The server runs unprivileged.
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the server pod does not run as non-root")
	}
	if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
		t.Error("the server container is privileged")
	}

	// The API Service reaches the servers' API port; the budget keeps a
	// quorum.
	for _, s := range m.services {
		if !selects(s.Spec.Selector, ss.Spec.Template.Labels) {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.String() != "api" && p.TargetPort.String() != "internal" {
				t.Errorf("service %s targets port %s, which the servers do not name", s.Name, p.TargetPort.String())
			}
		}
	}
	if len(m.pdbs) != 1 || m.pdbs[0].Spec.MaxUnavailable == nil || m.pdbs[0].Spec.MaxUnavailable.IntValue() != 1 ||
		!selects(m.pdbs[0].Spec.Selector.MatchLabels, ss.Spec.Template.Labels) {
		t.Error("want one PodDisruptionBudget of the servers with maxUnavailable 1")
	}
}

func TestTheWorkersArePrivilegedAndScaledByTheSignal(t *testing.T) {
	m := load(t)
	if len(m.deployments) != 1 {
		t.Fatalf("%d Deployments, want the workers' alone", len(m.deployments))
	}
	d := m.deployments[0]
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	role, flags := args(t, c)
	if role != "worker" {
		t.Fatalf("the Deployment runs nimbus %s", role)
	}
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("the selector %v does not select the pods %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	if selects(m.statefulSets[0].Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Error("the servers' selector also selects the workers")
	}
	if flags["id"] != "$(POD_NAME)" {
		t.Errorf("--id is %q: workers of one Deployment need IDs of their own", flags["id"])
	}
	if portOf(t, flags["listen"]) != containerPort(t, c, "rpc") || strings.HasPrefix(flags["listen"], "0.0.0.0") {
		t.Errorf("--listen %s is not the pod's address at its rpc port", flags["listen"])
	}
	// --servers: each server's API, as --join names them.
	_, server := args(t, m.statefulSets[0].Spec.Template.Spec.Containers[0])
	if flags["servers"] != server["join"] {
		t.Errorf("--servers %s, want every server as --join names them (%s)", flags["servers"], server["join"])
	}
	secretMounted(t, pod, c, flags["join-token-file"], m.secrets)

	sc := c.SecurityContext
	if sc == nil || sc.Privileged == nil || !*sc.Privileged || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Error("the worker must run privileged and as root: it builds sandboxes from namespaces, mounts and cgroups")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the privileged worker pod mounts a Kubernetes API token")
	}

	// The autoscaler: the worker Deployment, by the external metric, one
	// replica per unit, within the servers' scaling bounds.
	if len(m.hpas) != 1 {
		t.Fatalf("%d HorizontalPodAutoscalers, want one", len(m.hpas))
	}
	h := m.hpas[0].Spec
	if ref := h.ScaleTargetRef; ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("the autoscaler scales %s %s %s, not the workers", ref.APIVersion, ref.Kind, ref.Name)
	}
	if len(h.Metrics) != 1 || h.Metrics[0].External == nil {
		t.Fatal("the autoscaler must scale by one external metric")
	}
	ext := h.Metrics[0].External
	if ext.Metric.Name != "nimbus_scaling_desired_workers" || ext.Target.Type != autoscalingv2.AverageValueMetricType ||
		ext.Target.AverageValue == nil || ext.Target.AverageValue.String() != "1" {
		t.Errorf("the autoscaler's metric %s, target %s %v: want nimbus_scaling_desired_workers at an average value of 1",
			ext.Metric.Name, ext.Target.Type, ext.Target.AverageValue)
	}
	if h.MinReplicas == nil || strconv.Itoa(int(*h.MinReplicas)) != server["scaling-min-workers"] ||
		strconv.Itoa(int(h.MaxReplicas)) != server["scaling-max-workers"] {
		t.Errorf("the autoscaler's replicas %v to %d differ from the servers' --scaling-min-workers %s and --scaling-max-workers %s",
			h.MinReplicas, h.MaxReplicas, server["scaling-min-workers"], server["scaling-max-workers"])
	}
}

func TestTheSecretsHoldNoUsableKey(t *testing.T) {
	m := load(t)
	if len(m.secrets) == 0 {
		t.Fatal("no Secret")
	}
	for _, s := range m.secrets {
		for k, v := range s.StringData {
			if _, _, err := auth.ParseToken(v); err == nil {
				t.Errorf("secret %s holds a key in %s: ship placeholders, never keys", s.Name, k)
			}
		}
		if len(s.Data) != 0 {
			t.Errorf("secret %s has data: ship placeholders in stringData", s.Name)
		}
	}
}
