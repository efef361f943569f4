// Package deployments_test checks the deployment files against the code they
// deploy, offline (no container engine, no cluster, no Prometheus):
//
//   - docker-compose.yml is valid for docker-compose (`docker-compose config`);
//     every environment variable given to an auditstream service is one its
//     binary accepts, and the binary's own parser and Validate accept the values.
//   - deployments/kubernetes builds with kustomize (krusty); every resource
//     decodes strictly into its Kubernetes API type; env, ports, probes, grace
//     periods and security settings agree with the binaries' configuration.
//   - deployments/prometheus/alerts.yaml parses with Prometheus's rule parser
//     and every runbook it links exists.
//   - Every metric (and label) the Grafana dashboard and the alerts query is
//     exported by the real binaries: they are built and run against the
//     embedded broker and a throwaway PostgreSQL, driven until every series
//     the queries select exists, and scraped.
//   - The Dockerfile builds every binary that compose and Kubernetes run.
package deployments_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/auditstream/auditstream/internal/auth"
	"github.com/auditstream/auditstream/internal/config"
	"github.com/auditstream/auditstream/internal/testenv"
)

const (
	repoRoot      = ".."
	composeFile   = repoRoot + "/docker-compose.yml"
	dockerfile    = repoRoot + "/Dockerfile"
	kustomizeDir  = "kubernetes"
	alertsFile    = "prometheus/alerts.yaml"
	dashboardFile = "grafana/auditstream.json"
	// runbookBase is where runbook_url annotations point: the repository's
	// main branch on GitHub (the module path).
	runbookBase = "https://github.com/auditstream/auditstream/blob/main/"
)

// goRuntimeEnv are variables read by the Go runtime, not by the binaries'
// flag parser: allowed in deployments although no config struct names them.
var goRuntimeEnv = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GOGC": true}

// ---------------------------------------------------------------------------
// What the binaries accept: the kong `env` tags of their config structs.

// binary is one command line an orchestrator runs: the binary and, for the
// replayer, its subcommand.
type binary struct {
	name string // ingest-api, writer, dlq-replayer
	args []string
}

// binaryOf maps a container command (+ args) to the binary it runs.
func binaryOf(t *testing.T, command []string) binary {
	t.Helper()
	require.NotEmpty(t, command, "an auditstream container must name its command (the image has no fixed entrypoint)")
	b := binary{name: filepath.Base(command[0]), args: command[1:]}
	require.Contains(t, []string{"ingest-api", "writer", "dlq-replayer"}, b.name, "command %q", command)
	require.Equal(t, "/usr/local/bin/"+b.name, command[0], "binaries live in /usr/local/bin of the image")
	return b
}

// newConfig returns a pointer to the config struct of b.
func (b binary) newConfig() any {
	switch b.name {
	case "ingest-api":
		return &config.IngestAPI{}
	case "writer":
		return &config.Writer{}
	default:
		return &config.Replayer{}
	}
}

// acceptedEnv lists the environment variables b reads: every `env` tag of
// its config struct, following embedded structs and, for subcommands, only
// the one selected by b.args.
func (b binary) acceptedEnv() map[string]bool {
	out := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if _, isCmd := f.Tag.Lookup("cmd"); isCmd {
				name := f.Tag.Get("name")
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				if len(b.args) > 0 && b.args[0] == name {
					walk(f.Type)
				}
				continue
			}
			if env, ok := f.Tag.Lookup("env"); ok {
				for e := range strings.SplitSeq(env, ",") {
					out[strings.TrimSpace(e)] = true
				}
				continue
			}
			if _, embed := f.Tag.Lookup("embed"); (embed || f.Anonymous) && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeOf(b.newConfig()).Elem())
	return out
}

// parseConfig runs b's own flag parser (kong) and Validate on exactly env,
// the way the binary does at start-up, and returns the parsed struct.
func (b binary) parseConfig(t *testing.T, env map[string]string) any {
	t.Helper()
	for name := range b.acceptedEnv() {
		t.Setenv(name, "") // restored when the test ends
		require.NoError(t, os.Unsetenv(name))
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg := b.newConfig()
	parser, err := kong.New(cfg, kong.Name(b.name), config.Vars(), kong.Exit(func(code int) {
		t.Fatalf("%s exited %d while parsing", b.name, code)
	}), kong.Writers(io.Discard, io.Discard))
	require.NoError(t, err)
	_, err = parser.Parse(b.args)
	require.NoError(t, err, "%s %v rejects its environment %v", b.name, b.args, env)
	type validator interface{ Validate() error }
	require.NoError(t, reflect.ValueOf(cfg).Elem().Interface().(validator).Validate(), "%s: Validate", b.name)
	if r, ok := cfg.(*config.Replayer); ok && len(b.args) > 0 && b.args[0] == "run" {
		require.NoError(t, r.Run.Validate(), "dlq-replayer run: Validate")
	}
	return cfg
}

// checkEnv fails for every variable b does not accept and for missing
// required connection settings.
func checkEnv(t *testing.T, where string, b binary, env map[string]string) {
	t.Helper()
	accepted := b.acceptedEnv()
	for name := range env {
		if !accepted[name] && !goRuntimeEnv[name] {
			t.Errorf("%s: %s does not accept environment variable %s (it accepts %v)", where, b.name, name, slices.Sorted(maps.Keys(accepted)))
		}
	}
	for _, required := range []string{"KAFKA_BROKERS", "DATABASE_URL"} {
		if _, set := env[required]; accepted[required] && !set {
			t.Errorf("%s: %s needs %s", where, b.name, required)
		}
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err, "address %q", addr)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return n
}

// servedPorts are the ports the parsed config serves HTTP on (health
// first), the one serving /metrics, and the most a clean shutdown takes
// after SIGTERM.
func servedPorts(t *testing.T, cfg any) (ports []int, metrics int, drain time.Duration) {
	t.Helper()
	switch c := cfg.(type) {
	case *config.IngestAPI:
		// Metrics apart from the API (SPEC 8.1); they outlive its drain.
		m := portOf(t, c.MetricsAddr)
		return []int{portOf(t, c.HTTPAddr), m}, m, c.ShutdownDelay + c.ShutdownTimeout
	case *config.Writer:
		// Last flush, then the metrics server's 5 s drain.
		m := portOf(t, c.MetricsAddr)
		return []int{m}, m, c.WriteTimeout + 5*time.Second
	case *config.Replayer:
		m := portOf(t, c.Run.MetricsAddr)
		return []int{m}, m, 5 * time.Second
	}
	t.Fatalf("unknown config %T", cfg)
	return nil, 0, 0
}

// composeTokensFile is the compose stack's tokens file and the documented
// development key whose hash it holds.
const (
	composeTokensFile = repoRoot + "/deployments/compose/tokens.yaml"
	composeToken      = "ast_compose-local-development-key"
)

// ---------------------------------------------------------------------------
// Dockerfile

func TestDockerfileBuildsEveryBinaryStatically(t *testing.T) {
	raw, err := os.ReadFile(dockerfile)
	require.NoError(t, err)
	df := string(raw)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`, "USER 65532:65532", "ENTRYPOINT []"} {
		require.Contains(t, df, want)
	}
	require.Regexp(t, `(?m)^FROM golang:\$\{GO_VERSION\} AS build$`, df)
	require.Regexp(t, `(?m)^FROM gcr\.io/distroless/static[^ ]*:nonroot$`, df)
	for _, b := range []string{"ingest-api", "writer", "dlq-replayer", "auditctl"} {
		require.Contains(t, df, "./cmd/"+b, "the image must contain %s", b)
		require.Contains(t, df, "/out/"+b, "the image must contain %s", b)
	}
	ignore, err := os.ReadFile(repoRoot + "/.dockerignore")
	require.NoError(t, err)
	for _, want := range []string{"!go.mod", "!go.sum", "!cmd/", "!internal/"} {
		require.Contains(t, string(ignore), want, ".dockerignore must let the build context have %s", want)
	}
}

// ---------------------------------------------------------------------------
// docker-compose.yml

type composeService struct {
	Image       string          `json:"image"`
	Build       json.RawMessage `json:"build"`
	Command     []string        `json:"command"`
	Environment map[string]any  `json:"environment"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Ports           []json.RawMessage `json:"ports"`
	Volumes         []json.RawMessage `json:"volumes"`
	Restart         string            `json:"restart"`
	StopGracePeriod string            `json:"stop_grace_period"`
	Healthcheck     *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
}

type composeProject struct {
	Services map[string]composeService `json:"services"`
}

// composeConfig runs `docker-compose config` (Debian's docker-compose, or
// the Compose v2 plugin) and returns the normalized project. It fails, never
// skips, when neither is installed: .ci/run installs docker-compose.
func composeConfig(t *testing.T) composeProject {
	t.Helper()
	var cmd *exec.Cmd
	if path, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command(path, "-f", composeFile, "config")
	} else if docker, err := exec.LookPath("docker"); err == nil && exec.Command(docker, "compose", "version").Run() == nil {
		cmd = exec.Command(docker, "compose", "-f", composeFile, "config")
	} else {
		t.Fatal("docker-compose is not installed: apt-get install docker-compose (Debian), or install the Docker Compose plugin")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s: %s", cmd, stderr.String())
	var p composeProject
	require.NoError(t, yaml.Unmarshal(out, &p), "parse `%s` output", cmd)
	require.NotEmpty(t, p.Services)
	return p
}

func TestComposeFile(t *testing.T) {
	p := composeConfig(t)
	for _, infra := range []string{"kafka", "kafka-init", "postgres"} {
		require.Contains(t, p.Services, infra)
	}
	require.Contains(t, p.Services["kafka"].Image, "apache/kafka:")
	require.Contains(t, p.Services["postgres"].Image, "postgres:16")
	require.NotNil(t, p.Services["kafka"].Healthcheck, "kafka needs a healthcheck for service_healthy")
	require.NotNil(t, p.Services["postgres"].Healthcheck, "postgres needs a healthcheck for service_healthy")
	require.Contains(t, strings.Join(p.Services["postgres"].Healthcheck.Test, " "), "pg_isready")

	// The one-shot topic creation makes every topic with its partitions.
	initCmd := strings.Join(p.Services["kafka-init"].Command, " ")
	for _, topic := range []string{"audit.events:12", "audit.notifications:12", "audit.dlq:3", "audit.dlq.parked:3"} {
		require.Contains(t, initCmd, topic)
	}

	// The writer's integrity keys: made once by auditctl from the image,
	// into the volume the writer mounts.
	keysInit := p.Services["integrity-keys-init"]
	require.Equal(t, []string{"/usr/local/bin/auditctl", "keys", "--dir", "/run/auditstream/integrity", "--keep-existing"}, keysInit.Command)
	require.Equal(t, "no", keysInit.Restart)
	require.Contains(t, volumes(keysInit), "integrity-keys:/run/auditstream/integrity:rw")
	exportInit := p.Services["export-key-init"]
	require.Equal(t, []string{"/usr/local/bin/auditctl", "keys", "--kind", "ed25519", "--ed25519-name", "export-signing-key",
		"--dir", "/run/auditstream/export", "--keep-existing"}, exportInit.Command)
	require.Equal(t, "no", exportInit.Restart)
	require.Contains(t, initCmd, "--topic audit.checkpoints --partitions 1")
	require.Contains(t, initCmd, "retention.ms=-1")

	ran := map[string]bool{}
	for name, svc := range p.Services {
		if !strings.HasPrefix(svc.Image, "auditstream:") || name == "integrity-keys-init" || name == "export-key-init" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			b := binaryOf(t, svc.Command)
			ran[strings.TrimSpace(b.name+" "+strings.Join(b.args, " "))] = true
			require.NotEmpty(t, svc.Build, "built from this repository's Dockerfile")
			require.Equal(t, "unless-stopped", svc.Restart)
			env := envStrings(svc.Environment)
			checkEnv(t, "docker-compose.yml service "+name, b, env)
			cfg := b.parseConfig(t, env)

			ports, _, drain := servedPorts(t, cfg)
			require.Len(t, svc.Ports, len(ports))
			for i, port := range ports {
				require.Contains(t, string(svc.Ports[i]), fmt.Sprintf(":%d", port), "published ports are the ones the binary listens on")
			}
			if api, ok := cfg.(*config.IngestAPI); ok {
				// The shipped key works: the file mounted as a secret
				// loads, and the documented key is in it.
				require.Equal(t, "/run/secrets/auditstream-api-tokens", api.Auth.TokensFile)
				a, err := auth.New(auth.Config{TokensFile: composeTokensFile, FileCheckInterval: time.Second}, zap.NewNop(), prometheus.NewRegistry())
				require.NoError(t, err)
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				req.Header.Set("Authorization", "Bearer "+composeToken)
				_, err = a.Authenticate(req)
				require.NoError(t, err, "the development key of docker-compose.yml")
			}
			grace, err := time.ParseDuration(svc.StopGracePeriod)
			require.NoError(t, err, "stop_grace_period")
			require.Greater(t, grace, drain, "stop_grace_period must outlast the shutdown (compose's default 10 s is too short)")

			require.Equal(t, "service_completed_successfully", svc.DependsOn["kafka-init"].Condition, "start after the topics exist")
			if b.acceptedEnv()["DATABASE_URL"] {
				require.Equal(t, "service_healthy", svc.DependsOn["postgres"].Condition)
			}
			if b.acceptedEnv()["SOURCE_KEYS_FILE"] {
				// The API and the writer share one key: the file
				// source-keys-init writes into the volume both mount.
				require.Equal(t, "/run/auditstream/source-keys/source-keys.yaml", env["SOURCE_KEYS_FILE"])
				require.Contains(t, volumes(svc), "source-keys:/run/auditstream/source-keys:ro")
				require.Equal(t, "service_completed_successfully", svc.DependsOn["source-keys-init"].Condition)
			}
			if b.acceptedEnv()["INTEGRITY_KEYS_FILE"] {
				// The writers' key file, which the API verifies with too.
				require.Equal(t, "/run/auditstream/integrity/integrity-keys.yaml", env["INTEGRITY_KEYS_FILE"])
				require.Contains(t, volumes(svc), "integrity-keys:/run/auditstream/integrity:ro")
				require.Equal(t, "service_completed_successfully", svc.DependsOn["integrity-keys-init"].Condition)
			}
			if b.acceptedEnv()["CHECKPOINT_SIGNING_KEY_FILE"] {
				require.Equal(t, "/run/auditstream/integrity/checkpoint-signing-key.pem", env["CHECKPOINT_SIGNING_KEY_FILE"])
			}
			if b.acceptedEnv()["EXPORT_SIGNING_KEY_FILE"] {
				// The key integrity-keys-init makes, and the export key of
				// export-key-init.
				require.Equal(t, "/run/auditstream/integrity/checkpoint-signing-key.pub.pem", env["CHECKPOINT_PUBLIC_KEY_FILE"])
				require.Equal(t, "/run/auditstream/export/export-signing-key.pem", env["EXPORT_SIGNING_KEY_FILE"])
				require.Contains(t, volumes(svc), "export-key:/run/auditstream/export:ro")
				require.Equal(t, "service_completed_successfully", svc.DependsOn["export-key-init"].Condition)
			}
		})
	}
	require.Equal(t, map[string]bool{"ingest-api": true, "writer": true, "dlq-replayer run": true}, ran,
		"compose runs the three binaries (the replayer as the `run` daemon)")
	require.Contains(t, volumes(p.Services["source-keys-init"]), "source-keys:/run/auditstream/source-keys:rw")
	require.Contains(t, volumes(exportInit), "export-key:/run/auditstream/export:rw")
}

// volumes lists a service's volume mounts as `docker-compose config`
// writes them (source:target:mode).
func volumes(svc composeService) []string {
	out := make([]string, 0, len(svc.Volumes))
	for _, v := range svc.Volumes {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out = append(out, s)
		}
	}
	return out
}

// composeEnv reads the environment compose gives service, straight from the
// file (anchors and merge keys resolved by the YAML parser), so the metrics
// test can start the binaries with it even where docker-compose is absent.
func composeEnv(t *testing.T, service string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(composeFile)
	require.NoError(t, err)
	var p composeProject
	require.NoError(t, yaml.Unmarshal(raw, &p))
	svc, ok := p.Services[service]
	require.True(t, ok, "compose service %s", service)
	return envStrings(svc.Environment)
}

// envStrings renders compose environment values (YAML scalars) as the
// strings a process receives.
func envStrings(env map[string]any) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// ---------------------------------------------------------------------------
// Kubernetes

func k8sDecoder() *kjson.Serializer {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// Strict: unknown and duplicate fields are errors, as `kubectl apply
	// --validate=strict` makes them.
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
}

// decodeStrict decodes one manifest into its typed object.
func decodeStrict(t *testing.T, where string, doc []byte) runtime.Object {
	t.Helper()
	obj, gvk, err := k8sDecoder().Decode(doc, nil, nil)
	require.NoError(t, err, "%s: strict decoding\n%s", where, doc)
	require.NotNil(t, gvk)
	return obj
}

func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(kustomizeDir, "*.yaml"))
	require.NoError(t, err)
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for i := 0; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			obj := decodeStrict(t, fmt.Sprintf("%s document %d", f, i), doc)
			meta, ok := obj.(interface{ GetNamespace() string })
			require.True(t, ok)
			require.Empty(t, meta.GetNamespace(), "%s: the base is namespace-agnostic", f)
		}
	}
}

// kustomizeBuild builds the base and decodes every resource strictly.
func kustomizeBuild(t *testing.T) []runtime.Object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), kustomizeDir)
	require.NoError(t, err, "kustomize build %s", kustomizeDir)
	var objs []runtime.Object
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		require.NoError(t, err)
		objs = append(objs, decodeStrict(t, "kustomize build: "+r.CurId().String(), doc))
	}
	return objs
}

func TestKustomizeBase(t *testing.T) {
	objs := kustomizeBuild(t)
	// Every manifest in the directory is part of the base.
	kust, err := os.ReadFile(filepath.Join(kustomizeDir, "kustomization.yaml"))
	require.NoError(t, err)
	files, _ := filepath.Glob(filepath.Join(kustomizeDir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			require.Contains(t, string(kust), "- "+b, "%s is not listed in kustomization.yaml resources", b)
		}
	}

	configMaps := map[string]map[string]string{}
	// The workloads: Deployments, and ingest-api's StatefulSet (a claim
	// per replica for its spool).
	deployments := map[string]workload{}
	var spoolClaims []corev1.PersistentVolumeClaim
	var hpas []*autoscalingv2.HorizontalPodAutoscaler
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			configMaps[o.Name] = o.Data
		case *appsv1.Deployment:
			deployments[o.Name] = workload{kind: "Deployment", Spec: workloadSpec{Template: o.Spec.Template, Replicas: o.Spec.Replicas}}
		case *appsv1.StatefulSet:
			deployments[o.Name] = workload{kind: "StatefulSet", Spec: workloadSpec{Template: o.Spec.Template, Replicas: o.Spec.Replicas}}
			spoolClaims = o.Spec.VolumeClaimTemplates
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		case *corev1.Secret:
			t.Errorf("the base must reference secrets, not define them: Secret %s", o.Name)
		}
		require.Empty(t, o.(interface{ GetNamespace() string }).GetNamespace(), "namespace-agnostic")
	}
	require.ElementsMatch(t, []string{"ingest-api", "writer", "dlq-replayer"}, slices.Collect(maps.Keys(deployments)))

	for name, d := range deployments {
		t.Run(name, func(t *testing.T) {
			pod := d.Spec.Template.Spec
			require.Len(t, pod.Containers, 1)
			c := pod.Containers[0]
			b := binaryOf(t, c.Command)
			require.Empty(t, c.Args)
			require.Regexp(t, `^auditstream(:|$)`, c.Image)

			// Environment: config maps (envFrom) and env entries.
			env := map[string]string{}
			for _, from := range c.EnvFrom {
				require.NotNil(t, from.ConfigMapRef, "envFrom only from the generated config maps")
				data, ok := configMaps[from.ConfigMapRef.Name]
				require.True(t, ok, "config map %s is part of the base", from.ConfigMapRef.Name)
				maps.Copy(env, data)
			}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				case e.ValueFrom.SecretKeyRef != nil:
					env[e.Name] = "postgres://from-secret/" + e.ValueFrom.SecretKeyRef.Name
				case e.ValueFrom.ResourceFieldRef != nil:
					require.True(t, goRuntimeEnv[e.Name], "%s from a resource field", e.Name)
				case e.ValueFrom.FieldRef != nil:
					// The writer's static member name: stable across
					// restarts of the pod's container, unique per pod.
					require.Equal(t, "POD_NAME", e.Name, "the only variable from the pod's fields")
					require.Equal(t, "metadata.name", e.ValueFrom.FieldRef.FieldPath)
					env[e.Name] = name + "-0"
				default:
					t.Errorf("env %s: unexpected source", e.Name)
				}
			}
			checkEnv(t, d.kind+" "+name, b, env)
			for _, e := range c.Env {
				if e.Name == "DATABASE_URL" {
					require.NotNil(t, e.ValueFrom.SecretKeyRef, "DATABASE_URL holds a password: from a Secret")
				}
			}
			if b.acceptedEnv()["SOURCE_KEYS_FILE"] {
				requireSecretMount(t, pod, c, filepath.Dir(env["SOURCE_KEYS_FILE"]), "auditstream-source-keys")
			}
			if b.acceptedEnv()["INTEGRITY_KEYS_FILE"] {
				requireSecretMount(t, pod, c, filepath.Dir(env["INTEGRITY_KEYS_FILE"]), "auditstream-integrity-keys")
			}
			if b.acceptedEnv()["CHECKPOINT_SIGNING_KEY_FILE"] {
				requireSecretMount(t, pod, c, filepath.Dir(env["CHECKPOINT_SIGNING_KEY_FILE"]), "auditstream-checkpoint-signing-key")
			}
			if b.acceptedEnv()["EXPORT_SIGNING_KEY_FILE"] {
				requireSecretMount(t, pod, c, filepath.Dir(env["EXPORT_SIGNING_KEY_FILE"]), "auditstream-export-signing-key")
				requireConfigMapMount(t, pod, c, filepath.Dir(env["CHECKPOINT_PUBLIC_KEY_FILE"]), "auditstream-checkpoint-public-key")
			}
			delete(env, "GOMEMLIMIT")
			cfg := b.parseConfig(t, env)
			ports, metrics, drain := servedPorts(t, cfg)

			// The container ports, probes and prometheus annotation agree
			// with the addresses the binary listens on.
			require.Len(t, c.Ports, len(ports))
			for i, port := range ports {
				require.EqualValues(t, port, c.Ports[i].ContainerPort)
			}
			require.Equal(t, strconv.Itoa(metrics), d.Spec.Template.Annotations["prometheus.io/port"])
			if api, ok := cfg.(*config.IngestAPI); ok {
				// The spool lives on the replica's own claim (SPEC 11).
				require.Equal(t, "StatefulSet", d.kind, "ingest-api keeps its spool on a claim per replica")
				require.True(t, api.Spool.Enabled(), "SPOOL_DIR is set")
				var claim string
				for _, m := range c.VolumeMounts {
					if m.MountPath == api.Spool.Dir {
						claim = m.Name
					}
				}
				require.NotEmpty(t, claim, "a volume is mounted at SPOOL_DIR %s", api.Spool.Dir)
				require.Len(t, spoolClaims, 1)
				require.Equal(t, claim, spoolClaims[0].Name)
				size := spoolClaims[0].Spec.Resources.Requests[corev1.ResourceStorage]
				require.Greater(t, size.Value(), api.Spool.MaxBytes, "the claim holds SPOOL_MAX_BYTES")
				require.NotNil(t, pod.SecurityContext.FSGroup, "the claim is writable by the API's group")
				// The tokens file comes from a Secret volume.
				var fromSecret bool
				for _, m := range c.VolumeMounts {
					if strings.HasPrefix(api.Auth.TokensFile, m.MountPath+"/") {
						for _, v := range pod.Volumes {
							fromSecret = fromSecret || (v.Name == m.Name && v.Secret != nil)
						}
					}
				}
				require.True(t, fromSecret, "AUTH_TOKENS_FILE %s is mounted from a Secret", api.Auth.TokensFile)
			}
			for probe, wantPath := range map[*corev1.Probe]string{c.ReadinessProbe: "/health/ready", c.LivenessProbe: "/health/live", c.StartupProbe: "/health/live"} {
				require.NotNil(t, probe)
				require.NotNil(t, probe.HTTPGet)
				require.Equal(t, wantPath, probe.HTTPGet.Path)
				require.Equal(t, c.Ports[0].Name, probe.HTTPGet.Port.String())
			}

			// Shutdown fits the grace period.
			require.NotNil(t, pod.TerminationGracePeriodSeconds)
			grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
			require.Greater(t, grace, drain+4*time.Second, "terminationGracePeriodSeconds must outlast the binary's shutdown")

			// Resources and hardening.
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				require.Contains(t, c.Resources.Requests, r)
				require.Contains(t, c.Resources.Limits, r)
			}
			require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
			require.True(t, *pod.SecurityContext.RunAsNonRoot)
			sc := c.SecurityContext
			require.NotNil(t, sc)
			require.True(t, *sc.ReadOnlyRootFilesystem)
			require.False(t, *sc.AllowPrivilegeEscalation)
			require.Contains(t, sc.Capabilities.Drop, corev1.Capability("ALL"))

			switch b.name {
			case "writer":
				w := cfg.(*config.Writer)
				require.LessOrEqual(t, *d.Spec.Replicas, w.Kafka.TopicPartitions, "writers beyond the partition count sit idle")
			case "dlq-replayer":
				require.EqualValues(t, 1, *d.Spec.Replicas)
				require.Equal(t, []string{"run"}, b.args)
			}
		})
	}

	// Only the API autoscales.
	require.Len(t, hpas, 1)
	require.Equal(t, "ingest-api", hpas[0].Spec.ScaleTargetRef.Name)
	require.Equal(t, deployments["ingest-api"].kind, hpas[0].Spec.ScaleTargetRef.Kind)
}

// workload is the part of a Deployment or a StatefulSet the checks read.
type workload struct {
	kind string
	Spec workloadSpec
}

type workloadSpec struct {
	Template corev1.PodTemplateSpec
	Replicas *int32
}

// requireConfigMapMount checks that container c of pod mounts the
// ConfigMap name, required, read-only at dir.
func requireConfigMapMount(t *testing.T, pod corev1.PodSpec, c corev1.Container, dir, name string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		require.True(t, m.ReadOnly, "%s is mounted read-only", dir)
		for _, v := range pod.Volumes {
			if v.Name == m.Name {
				require.NotNil(t, v.ConfigMap, "%s is a ConfigMap", m.Name)
				require.Equal(t, name, v.ConfigMap.Name)
				require.True(t, v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional, "%s is required", name)
				return
			}
		}
	}
	t.Errorf("no ConfigMap %s mounted at %s", name, dir)
}

// requireSecretMount checks that container c of pod mounts the Secret
// secret, required, read-only at dir.
func requireSecretMount(t *testing.T, pod corev1.PodSpec, c corev1.Container, dir, secret string) {
	t.Helper()
	var volume string
	for _, m := range c.VolumeMounts {
		if m.MountPath == dir {
			require.True(t, m.ReadOnly, "%s is mounted read-only", dir)
			volume = m.Name
		}
	}
	require.NotEmpty(t, volume, "a volume is mounted at %s", dir)
	for _, v := range pod.Volumes {
		if v.Name == volume {
			require.NotNil(t, v.Secret, "%s is a Secret", volume)
			require.Equal(t, secret, v.Secret.SecretName)
			require.True(t, v.Secret.Optional == nil || !*v.Secret.Optional, "%s is required", secret)
			return
		}
	}
	t.Errorf("volume %s is not defined", volume)
}

// ---------------------------------------------------------------------------
// Alert rules and dashboard

func promqlParser() parser.Parser { return parser.NewParser(parser.Options{}) }

func TestAlertRulesParse(t *testing.T) {
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.LegacyValidation, promqlParser(), nil)
	require.Empty(t, errs)
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			require.NotEmpty(t, r.Alert, "%s: only alerting rules here", g.Name)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			url := r.Annotations["runbook_url"]
			require.True(t, strings.HasPrefix(url, runbookBase+"docs/runbooks/"), "%s: runbook_url %q", r.Alert, url)
			require.FileExists(t, filepath.Join(repoRoot, strings.TrimPrefix(url, runbookBase)), "%s: runbook", r.Alert)
		}
	}
	require.GreaterOrEqual(t, n, 6)
}

// query is one PromQL expression and where it comes from.
type query struct{ where, expr string }

// grafanaVars replaces the dashboard's variables with values PromQL parses.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
	"$job_api", "ingest-api", "$job_writer", "writer", "$job_replayer", "dlq-replayer")

func dashboardQueries(t *testing.T) []query {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.NotEmpty(t, dash.UID)
	var vars []string
	for _, v := range dash.Templating.List {
		vars = append(vars, v.Name)
	}
	require.Contains(t, vars, "datasource")
	ids := map[int]bool{}
	var qs []query
	for _, p := range dash.Panels {
		require.False(t, ids[p.ID], "duplicate panel id %d", p.ID)
		ids[p.ID] = true
		if p.Type != "row" {
			require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			expr := grafanaVars.Replace(tg.Expr)
			require.NotContains(t, expr, "$", "panel %q: unknown variable in %s", p.Title, tg.Expr)
			qs = append(qs, query{where: "dashboard panel " + strconv.Quote(p.Title), expr: expr})
		}
	}
	return qs
}

func alertQueries(t *testing.T) []query {
	t.Helper()
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.LegacyValidation, promqlParser(), nil)
	require.Empty(t, errs)
	var qs []query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: "alert " + r.Alert, expr: r.Expr})
		}
	}
	return qs
}

func TestDashboardQueriesParse(t *testing.T) {
	qs := dashboardQueries(t)
	require.GreaterOrEqual(t, len(qs), 15)
	for _, q := range qs {
		_, err := promqlParser().ParseExpr(q.expr)
		require.NoError(t, err, "%s: %s", q.where, q.expr)
	}
}

// ---------------------------------------------------------------------------
// Metrics: the queries against a live scrape of the real binaries.

// targetLabels are attached by Prometheus's scrape and service discovery,
// not by the binaries.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true,
	"container": true, "endpoint": true, "node": true}

// scrape is the series of one /metrics answer: every sample's name with its
// labels (histograms expanded into _bucket, _sum and _count as Prometheus
// stores them).
type scrape map[string][]labels.Labels

func parseScrape(t *testing.T, text []byte) scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	require.NoError(t, err)
	s := scrape{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			base := labels.NewBuilder(labels.EmptyLabels())
			for _, lp := range m.GetLabel() {
				base.Set(lp.GetName(), lp.GetValue())
			}
			ls := base.Labels()
			switch fam.GetType() {
			case dto.MetricType_HISTOGRAM:
				for _, b := range m.GetHistogram().GetBucket() {
					s[name+"_bucket"] = append(s[name+"_bucket"], labels.NewBuilder(ls).Set("le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)).Labels())
				}
				s[name+"_bucket"] = append(s[name+"_bucket"], labels.NewBuilder(ls).Set("le", "+Inf").Labels())
				s[name+"_sum"] = append(s[name+"_sum"], ls)
				s[name+"_count"] = append(s[name+"_count"], ls)
			case dto.MetricType_SUMMARY:
				s[name+"_sum"] = append(s[name+"_sum"], ls)
				s[name+"_count"] = append(s[name+"_count"], ls)
				s[name] = append(s[name], ls)
			default:
				s[name] = append(s[name], ls)
			}
		}
	}
	return s
}

// checkQuery fails for every selector of q that selects no series of s, and
// for every `by (...)` label that none of the selected series has.
func checkQuery(t errorReporter, q query, s scrape) {
	t.Helper()
	expr, err := promqlParser().ParseExpr(q.expr)
	if err != nil {
		t.Errorf("%s: %s: %v", q.where, q.expr, err)
		return
	}
	matched := func(vs *parser.VectorSelector) []labels.Labels {
		var out []labels.Labels
		for _, ls := range s[vs.Name] {
			ok := true
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName || targetLabels[m.Name] {
					continue
				}
				ok = ok && m.Matches(ls.Get(m.Name))
			}
			if ok {
				out = append(out, ls)
			}
		}
		return out
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			if len(s[n.Name]) == 0 {
				t.Errorf("%s: metric %s is not exported by any binary (%s)", q.where, n.Name, q.expr)
			} else if len(matched(n)) == 0 {
				t.Errorf("%s: selector %s matches none of the exported series %v", q.where, n, s[n.Name])
			}
		case *parser.AggregateExpr:
			if n.Without {
				break
			}
			have := map[string]bool{}
			parser.Inspect(n.Expr, func(inner parser.Node, _ []parser.Node) error {
				if vs, ok := inner.(*parser.VectorSelector); ok {
					for _, ls := range matched(vs) {
						ls.Range(func(l labels.Label) { have[l.Name] = true })
					}
				}
				return nil
			})
			for _, g := range n.Grouping {
				if !have[g] && !targetLabels[g] {
					t.Errorf("%s: `by (%s)`: no selected series has label %q (%s)", q.where, strings.Join(n.Grouping, ", "), g, q.expr)
				}
			}
		}
		return nil
	})
}

func TestMetricsQueriedAreExported(t *testing.T) {
	queries := append(dashboardQueries(t), alertQueries(t)...)
	began := time.Now()
	bin := buildBinaries(t)
	t.Logf("built the binaries in %s", time.Since(began).Round(time.Millisecond))

	// The embedded broker and PostgreSQL even where the developer has set
	// KAFKA_BROKERS / DATABASE_URL: the test stops the broker on purpose.
	t.Setenv(testenv.EnvKafkaBrokers, "")
	t.Setenv(testenv.EnvDatabaseURL, "")
	kafka := testenv.NewKafka(t, map[string]int32{"audit.events": 3, "audit.notifications": 3, "audit.dlq": 1, "audit.dlq.parked": 1})
	pg := testenv.NewPostgres(t)
	brokers := strings.Join(kafka.Brokers(), ",")
	sourceKeys := testenv.NewSourceKeys(t)
	integrityKeys := testenv.NewIntegrityKeys(t)

	// Each binary runs with the environment docker-compose gives it, pointed
	// at the test's services and sped up.
	start := func(service string, args []string, overrides map[string]string) *process {
		env := composeEnv(t, service)
		env["KAFKA_BROKERS"] = brokers
		if _, ok := env["DATABASE_URL"]; ok {
			env["DATABASE_URL"] = pg.URL()
		}
		if _, ok := env["SOURCE_KEYS_FILE"]; ok {
			env["SOURCE_KEYS_FILE"] = sourceKeys
		}
		// The keys each binary is given, at the test's paths.
		for name, path := range map[string]string{"INTEGRITY_KEYS_FILE": integrityKeys.KeysFile,
			"CHECKPOINT_SIGNING_KEY_FILE": integrityKeys.SigningKeyFile, "CHECKPOINT_PUBLIC_KEY_FILE": integrityKeys.PublicKeyFile,
			"EXPORT_SIGNING_KEY_FILE": integrityKeys.ExportKeyFile} {
			if _, ok := env[name]; ok {
				env[name] = path
			}
		}
		maps.Copy(env, overrides)
		return startProcess(t, filepath.Join(bin, service), args, env)
	}
	api := start("ingest-api", nil, map[string]string{"HTTP_ADDR": testenv.NewAddr(t), "METRICS_ADDR": testenv.NewAddr(t),
		"AUTH_TOKENS_FILE": composeTokensFile, "PUBLISH_TIMEOUT": "2s", "SPOOL_DIR": t.TempDir(), "SPOOL_MAX_BYTES": "1048576"})
	api.token = composeToken
	writer := start("writer", nil, map[string]string{"METRICS_ADDR": testenv.NewAddr(t), "BATCH_AGE": "50ms", "CHECKPOINT_INTERVAL": "1s"})
	replayer := start("dlq-replayer", []string{"run"}, map[string]string{"METRICS_ADDR": testenv.NewAddr(t), "REPLAY_INTERVAL": "500ms", "MAX_ATTEMPTS": "1"})
	for _, p := range []*process{api, writer, replayer} {
		p.waitReady(t, 90*time.Second)
	}
	t.Logf("binaries ready after %s", time.Since(began).Round(time.Millisecond))

	// Traffic that makes every series the queries select: accepted,
	// duplicate, rejected and read requests; a poison record that the
	// writer dead-letters, the replayer replays once and then parks.
	now := time.Now().UTC().Format(time.RFC3339)
	eventID := uuid.NewString()
	event := fmt.Sprintf(`{"version":"1.0","event_type":"deployments.test","event_timestamp":%q,"event_category":"gateway",
		"event_action":"scrape","event_outcome":"success","correlation_id":"deployments-test","event_data":{},"event_id":%q}`, now, eventID)
	api.post(t, "/api/v1/audit/events", event, http.StatusCreated)
	api.post(t, "/api/v1/audit/events", event, http.StatusCreated) // the writer skips the duplicate
	api.post(t, "/api/v1/audit/events/batch", "["+strings.Replace(event, eventID, uuid.NewString(), 1)+"]", http.StatusCreated)
	api.post(t, "/api/v1/audit/events", `{}`, http.StatusBadRequest)
	api.token = ""
	api.post(t, "/api/v1/audit/events", event, http.StatusUnauthorized)
	api.token = composeToken
	api.post(t, "/api/v1/audit/notifications", fmt.Sprintf(`{"remediation_id":"r-1","notification_id":%q,"recipient":"sre@example.com",
		"channel":"email","message_summary":"deployments test","status":"sent","sent_at":%q}`, uuid.NewString(), now), http.StatusCreated)
	api.get(t, "/api/v1/audit/events?limit=5", http.StatusOK)
	produce(t, kafka.Brokers(), "audit.events", "poison", "not json")

	require.Eventually(t, func() bool {
		w, r := writer.scrape(t), replayer.scrape(t)
		return has(w, "auditstream_writer_rows_written_total", "table", "audit_events") &&
			has(w, "auditstream_writer_rows_written_total", "table", "notification_audit") &&
			has(w, "auditstream_writer_dead_letters_total", "class", "poison") &&
			has(r, "auditstream_replayer_records_total", "action", "replayed") &&
			has(r, "auditstream_replayer_records_total", "action", "parked") &&
			has(r, "auditstream_replayer_waiting_records", "topic", "audit.dlq.parked") &&
			has(r, "auditstream_replayer_oldest_waiting_age_seconds", "topic", "audit.dlq.parked") &&
			has(r, "auditstream_replayer_passes_total", "result", "ok")
	}, 90*time.Second, 250*time.Millisecond, "the writer stores, dead-letters; the replayer replays and parks\nwriter log:\n%s\nreplayer log:\n%s",
		writer.log, replayer.log)
	t.Logf("pipeline traffic done after %s", time.Since(began).Round(time.Millisecond))
	all := scrape{}
	for _, p := range []*process{writer, replayer} {
		merge(all, p.scrape(t))
		p.stop(t)
	}

	// Kafka goes away: the API spools (202) and counts the failed
	// publish; what does not fit the spool is answered 503.
	require.NoError(t, kafka.Close())
	api.post(t, "/api/v1/audit/events", strings.Replace(event, eventID, uuid.NewString(), 1), http.StatusAccepted)
	large := make([]string, 20)
	for i := range large {
		large[i] = strings.Replace(strings.Replace(event, eventID, uuid.NewString(), 1),
			`"event_data":{}`, `"event_data":{"blob":"`+strings.Repeat("x", 60<<10)+`"}`, 1)
	}
	api.post(t, "/api/v1/audit/events/batch", "["+strings.Join(large, ",")+"]", http.StatusServiceUnavailable)
	merge(all, api.scrape(t))
	api.stop(t)

	for _, q := range queries {
		checkQuery(t, q, all)
	}
}

// errorReporter is the part of testing.T that checkQuery uses, so that a
// test can check that it reports what it should.
type errorReporter interface {
	Helper()
	Errorf(format string, args ...any)
}

type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestCheckQueryReportsMismatches keeps the metrics check honest: a
// missing metric, a label value no series has and a grouping label no
// series carries are each reported; target labels are not.
func TestCheckQueryReportsMismatches(t *testing.T) {
	s := parseScrape(t, []byte(`# HELP auditstream_replayer_records_total x
# TYPE auditstream_replayer_records_total counter
auditstream_replayer_records_total{action="replayed"} 1
# HELP auditstream_writer_flush_duration_seconds x
# TYPE auditstream_writer_flush_duration_seconds histogram
auditstream_writer_flush_duration_seconds_bucket{result="ok",le="0.1"} 1
auditstream_writer_flush_duration_seconds_bucket{result="ok",le="+Inf"} 1
auditstream_writer_flush_duration_seconds_sum{result="ok"} 0.01
auditstream_writer_flush_duration_seconds_count{result="ok"} 1
`))
	for _, tc := range []struct {
		expr string
		errs int
	}{
		{`sum by (action, namespace) (rate(auditstream_replayer_records_total{job="x",action="replayed"}[5m]))`, 0},
		{`histogram_quantile(0.99, sum by (le, result) (rate(auditstream_writer_flush_duration_seconds_bucket[5m])))`, 0},
		{`auditstream_writer_flush_duration_seconds_sum / auditstream_writer_flush_duration_seconds_count`, 0},
		{`auditstream_writer_flush_duration_seconds`, 1},                // a histogram has no bare series
		{`auditstream_replayer_records_total{action="parked"}`, 1},      // no such series
		{`sum by (topic) (auditstream_replayer_records_total)`, 1},      // no such label
		{`rate(auditstream_no_such_metric_total[5m]) + 1`, 1},           // not exported
		{`auditstream_replayer_records_total{action=~"re.*"} > 0`, 0},   // regex matches
		{`auditstream_replayer_records_total{action=~"park.*"} > 0`, 1}, // regex matches none
	} {
		var r recorder
		checkQuery(&r, query{where: "case", expr: tc.expr}, s)
		require.Len(t, r.errs, tc.errs, "%s: %v", tc.expr, r.errs)
	}
}

func has(s scrape, metric, label, value string) bool {
	for _, ls := range s[metric] {
		if ls.Get(label) == value {
			return true
		}
	}
	return false
}

func merge(dst, src scrape) {
	for k, v := range src {
		dst[k] = append(dst[k], v...)
	}
}

// buildBinaries builds the three commands the way the Dockerfile does.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	goTool, err := exec.LookPath("go") // go test puts its own toolchain first on PATH
	require.NoError(t, err)
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", dir+"/",
		"./cmd/ingest-api", "./cmd/writer", "./cmd/dlq-replayer")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return dir
}

func produce(t *testing.T, brokers []string, topic, key, value string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)}).FirstErr())
}

// process is one running binary.
type process struct {
	name    string
	addr    string // HTTP_ADDR or METRICS_ADDR
	metrics string // METRICS_ADDR
	token   string // sent as a bearer token when set
	cmd     *exec.Cmd
	log     *testenv.Output
	done    chan error
	once    sync.Once
}

func startProcess(t *testing.T, path string, args []string, env map[string]string) *process {
	t.Helper()
	p := &process{name: filepath.Base(path), log: &testenv.Output{}, done: make(chan error, 1)}
	p.addr, p.metrics = env["HTTP_ADDR"], env["METRICS_ADDR"]
	if p.addr == "" {
		p.addr = p.metrics
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// exited reports whether the process has ended (without consuming the
// result that stop waits for).
func (p *process) exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

func (p *process) url(path string) string { return "http://" + p.addr + path }

func (p *process) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited before it was ready\n%s", p.name, p.log)
		}
		resp, err := http.Get(p.url("/health/ready"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s\n%s", p.name, timeout, p.log)
}

// request sends a request with the process's token.
func (p *process) request(t *testing.T, method, path string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, p.url(path), body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return resp
}

func (p *process) post(t *testing.T, path, body string, want int) {
	t.Helper()
	resp := p.request(t, http.MethodPost, path, strings.NewReader(body))
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	require.Equal(t, want, resp.StatusCode, "POST %s: %s", path, got)
}

func (p *process) get(t *testing.T, path string, want int) {
	t.Helper()
	resp := p.request(t, http.MethodGet, path, nil)
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	require.Equal(t, want, resp.StatusCode, "GET %s: %s", path, got)
}

func (p *process) scrape(t *testing.T) scrape {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return parseScrape(t, body)
}

// stop sends SIGTERM and waits; a process that does not exit in time is
// killed (this test checks metrics, not shutdown).
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Logf("%s did not stop within 30 s of SIGTERM; killed", p.name)
		}
	})
}

// ---------------------------------------------------------------------------
// small helpers

var commentLine = regexp.MustCompile(`(?m)^\s*#.*$`)

func stripComments(doc []byte) []byte { return commentLine.ReplaceAll(doc, nil) }
