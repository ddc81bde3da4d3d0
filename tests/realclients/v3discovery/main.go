// Command v3discovery simulates etcd 3.6+ members bootstrapping with v3 discovery
// (--discovery-endpoints, --discovery-token) against any etcd v3 API endpoint.
//
// It is this project's own code of the steps etcd's server/etcdserver/api/v3discovery
// takes (read from etcd 3.6), built on Debian's etcd 3.4 clientv3 in GOPATH mode:
//
//   - read /_etcd/registry/<token>/_config/size: missing -> "size key not found", not a
//     positive decimal integer -> "size key is bad" (neither is retried);
//   - read the members/ prefix; if `size` other members come first -> "cluster is full";
//   - put members/<member id in hex> = "name=peerURL[,...]";
//   - read the prefix again, then watch it from that read's header revision + 1 until
//     there are `size` members; members sort by create revision and the first `size` win;
//   - any other failure is retried after 2^n backoff units, n capped at 8.
//
// Members start one after another (member i once member i-1 has put its key) so the
// create-revision order, and so the initial-cluster string, is the same on every run.
// One line per member, in order: "<name> ok <initial-cluster>" or "<name> error <error>".
// With -proxy, a read-only member (etcd's GetCluster) runs after them and prints
// "proxy ok ..." or "proxy error ...".
package main

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/pkg/types"
)

const registryPrefix = "/_etcd/registry"

var (
	errBadSizeKey      = errors.New("discovery: size key is bad")
	errSizeNotFound    = errors.New("discovery: size key not found")
	errFullCluster     = errors.New("discovery: cluster is full")
	errTooManyRetries  = errors.New("discovery: too many retries")
	errInvalidURL      = errors.New("discovery: invalid peer URL")
	maxExponentialStep = uint(8)
)

type options struct {
	endpoints      []string
	token          string
	requestTimeout time.Duration
	dialTimeout    time.Duration
	backoffUnit    time.Duration
	maxRetries     uint
	clusterToken   string
}

// member is one entry of the members/ prefix.
type member struct {
	key       string
	value     string
	createRev int64
}

type cluster struct {
	token   string
	members []member
}

func memberPrefix(token string) string { return path.Join(registryPrefix, token, "members") }

// add keeps a well-formed, new member, in create-revision order (etcd ignores the others).
func (c *cluster) add(key, value string, createRev int64) {
	if !strings.HasPrefix(key, memberPrefix(c.token)) || !strings.ContainsRune(value, '=') {
		return
	}
	for _, m := range c.members {
		if m.key == key {
			return
		}
	}
	c.members = append(c.members, member{key, value, createRev})
	sort.SliceStable(c.members, func(i, j int) bool {
		return c.members[i].createRev < c.members[j].createRev
	})
}

func (c *cluster) initialCluster(size int) (string, error) {
	var values []string
	for _, m := range c.members {
		values = append(values, m.value)
	}
	if len(values) > size {
		values = values[:size]
	}
	s := strings.Join(values, ",")
	if _, err := types.NewURLsMap(s); err != nil {
		return s, errInvalidURL
	}
	return s, nil
}

type discovery struct {
	opts    options
	id      types.ID
	client  *clientv3.Client
	retries uint
}

func (d *discovery) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d.opts.requestTimeout)
}

func (d *discovery) backoff() error {
	if d.retries >= d.opts.maxRetries {
		return errTooManyRetries
	}
	d.retries++
	step := d.retries
	if step > maxExponentialStep {
		step = maxExponentialStep
	}
	time.Sleep(time.Duration(1<<step) * d.opts.backoffUnit)
	return nil
}

func (d *discovery) size() (int, error) {
	ctx, cancel := d.ctx()
	defer cancel()
	resp, err := d.client.Get(ctx, path.Join(registryPrefix, d.opts.token, "_config/size"))
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, errSizeNotFound
	}
	n, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 0)
	if err != nil || n <= 0 {
		return 0, errBadSizeKey
	}
	return int(n), nil
}

func (d *discovery) members() (*cluster, int64, error) {
	ctx, cancel := d.ctx()
	defer cancel()
	resp, err := d.client.Get(ctx, memberPrefix(d.opts.token), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	c := &cluster{token: d.opts.token}
	for _, kv := range resp.Kvs {
		c.add(strings.TrimSpace(string(kv.Key)), strings.TrimSpace(string(kv.Value)), kv.CreateRevision)
	}
	return c, resp.Header.Revision, nil
}

// check reads the size and the members, retrying transport failures (not the size's).
func (d *discovery) check() (*cluster, int, int64, error) {
	for {
		size, err := d.size()
		if errors.Is(err, errSizeNotFound) || errors.Is(err, errBadSizeKey) {
			return nil, 0, 0, err
		}
		var c *cluster
		var rev int64
		if err == nil {
			c, rev, err = d.members()
		}
		if err != nil {
			if berr := d.backoff(); berr != nil {
				return nil, 0, 0, berr
			}
			continue
		}
		d.retries = 0
		self := path.Join(memberPrefix(d.opts.token), d.id.String())
		for i, m := range c.members {
			if m.key == self {
				break
			}
			if i >= size-1 {
				return c, size, rev, errFullCluster
			}
		}
		return c, size, rev, nil
	}
}

func (d *discovery) register(value string) error {
	for {
		ctx, cancel := d.ctx()
		_, err := d.client.Put(ctx, path.Join(memberPrefix(d.opts.token), d.id.String()), value)
		cancel()
		if err == nil {
			d.retries = 0
			return nil
		}
		if berr := d.backoff(); berr != nil {
			return berr
		}
	}
}

func (d *discovery) wait(c *cluster, size int, rev int64) {
	for len(c.members) < size {
		w := d.client.Watch(context.Background(), memberPrefix(d.opts.token),
			clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range w {
			for _, ev := range resp.Events {
				c.add(strings.TrimSpace(string(ev.Kv.Key)), strings.TrimSpace(string(ev.Kv.Value)), ev.Kv.CreateRevision)
			}
			if len(c.members) >= size {
				break
			}
		}
	}
}

// join is etcd's JoinCluster; registered is closed once the member's key is in.
func (d *discovery) join(value string, registered chan<- struct{}) (string, error) {
	defer close(registered)
	if _, _, _, err := d.check(); err != nil {
		return "", err
	}
	if err := d.register(value); err != nil {
		return "", err
	}
	registered <- struct{}{}
	c, size, rev, err := d.check()
	if err != nil {
		return "", err
	}
	d.wait(c, size, rev)
	return c.initialCluster(size)
}

// get is etcd's GetCluster (member id 0): a full cluster is an answer, not an error.
func (d *discovery) get() (string, error) {
	c, size, rev, err := d.check()
	if errors.Is(err, errFullCluster) {
		return c.initialCluster(size)
	}
	if err != nil {
		return "", err
	}
	d.wait(c, size, rev)
	return c.initialCluster(size)
}

// memberID is etcd's id of a new member: the first 8 bytes of the SHA-1 of its sorted
// peer URLs followed by the cluster token (with v3 discovery etcd 3.6 takes the
// discovery token as the cluster token: embed.Config.PeerURLsMapAndToken).
func memberID(peerURLs []string, clusterToken string) types.ID {
	urls := append([]string(nil), peerURLs...)
	sort.Strings(urls)
	sum := sha1.Sum([]byte(strings.Join(urls, "") + clusterToken))
	return types.ID(binary.BigEndian.Uint64(sum[:8]))
}

func newDiscovery(opts options, id types.ID) (*discovery, error) {
	c, err := clientv3.New(clientv3.Config{Endpoints: opts.endpoints, DialTimeout: opts.dialTimeout})
	if err != nil {
		return nil, err
	}
	return &discovery{opts: opts, id: id, client: c}, nil
}

func main() {
	var opts options
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "discovery endpoints, comma separated")
	flag.StringVar(&opts.token, "token", "", "discovery token")
	n := flag.Int("members", 1, "members that join, one after another")
	peerBase := flag.Int("peer-port", 12380, "the first member's peer port (the next ones count up)")
	proxy := flag.Bool("proxy", false, "after the members, run a read-only member (GetCluster)")
	flag.DurationVar(&opts.requestTimeout, "request-timeout", 5*time.Second, "per request (etcd's default)")
	flag.DurationVar(&opts.dialTimeout, "dial-timeout", 2*time.Second, "dial timeout (etcd's default)")
	flag.DurationVar(&opts.backoffUnit, "backoff-unit", time.Second, "retry backoff unit (etcd: 1s)")
	flag.UintVar(&opts.maxRetries, "max-retries", 3, "retries before 'too many retries'")
	flag.StringVar(&opts.clusterToken, "initial-cluster-token", "", "cluster token of the member ids (etcd 3.6 with v3 discovery: the discovery token)")
	flag.Parse()
	opts.endpoints = strings.Split(*endpoints, ",")
	if opts.token == "" {
		fmt.Fprintln(os.Stderr, "-token is required")
		os.Exit(2)
	}
	if opts.clusterToken == "" {
		opts.clusterToken = opts.token
	}

	results := make([]string, *n)
	var wg sync.WaitGroup
	previous := make(chan struct{})
	close(previous)
	for i := 0; i < *n; i++ {
		name := fmt.Sprintf("m%d", i)
		peer := fmt.Sprintf("http://127.0.0.1:%d", *peerBase+i)
		value := name + "=" + peer
		d, err := newDiscovery(opts, memberID([]string{peer}, opts.clusterToken))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		registered := make(chan struct{}, 1)
		wait := previous
		wg.Add(1)
		go func(i int, name string) {
			defer wg.Done()
			defer d.client.Close()
			<-wait // member i-1 has put its key (or given up)
			cs, err := d.join(value, registered)
			if err != nil {
				results[i] = name + " error " + err.Error()
			} else {
				results[i] = name + " ok " + cs
			}
		}(i, name)
		previous = registered
	}
	<-previous
	if *proxy {
		// The read-only member starts once the last member has registered.
		d, err := newDiscovery(opts, types.ID(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cs, err := d.get()
		d.client.Close()
		wg.Wait()
		if err != nil {
			results = append(results, "proxy error "+err.Error())
		} else {
			results = append(results, "proxy ok "+cs)
		}
	}
	wg.Wait()
	for _, line := range results {
		fmt.Println(line)
	}
}
