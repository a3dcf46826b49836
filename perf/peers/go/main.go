// perf/peers/go/main.go — a minimal broadcast server on Go's
// gorilla/websocket (Debian golang-github-gorilla-websocket-dev), a peer for
// perf/run.
//
// What a user of the library would write: net/http with an Upgrader on /ws,
// a reader and a writer goroutine per connection (gorilla allows one of
// each), a buffered send channel per connection (a full channel closes the
// connection, as gorilla's chat example does), a topic → set of clients map
// under a RWMutex, and a publisher goroutine that builds one
// websocket.PreparedMessage per message (gorilla's documented way to send one
// payload to many connections: framed, and compressed, once per message)
// for a synthetic feed shaped like `ringcast --demo` (perf/peers/README.md).
// Subscribe protocol as ringcast's /ws.
//
// Build (no network, Debian's GOPATH):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o perf/build/peer-go perf/peers/go/main.go
//	perf/build/peer-go --port 9003 --demo-rate 100 --demo-topics 1
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// ringcast's demo symbols and start prices, in its order (src/ingest/demo.c)
var known = []struct {
	sym   string
	price float64
}{
	{"BTC", 64000.0}, {"ETH", 3200.0}, {"SOL", 150.0}, {"XRP", 0.52}, {"ADA", 0.45}, {"DOGE", 0.15},
	{"AVAX", 35.0}, {"DOT", 7.2}, {"LINK", 14.5}, {"MATIC", 0.70}, {"LTC", 82.0}, {"BCH", 460.0},
	{"ATOM", 8.5}, {"UNI", 9.8}, {"XLM", 0.11}, {"ETC", 27.0}, {"FIL", 5.6}, {"APT", 8.9}, {"ARB", 1.05},
	{"OP", 2.4}, {"NEAR", 6.8}, {"ICP", 12.3}, {"HBAR", 0.085}, {"VET", 0.035}, {"ALGO", 0.18},
	{"BNB", 580.0}, {"TRX", 0.12}, {"SHIB", 0.000024}, {"AAVE", 95.0}, {"AAPL", 190.0}, {"MSFT", 420.0},
	{"NVDA", 120.0}, {"AMZN", 185.0}, {"GOOGL", 175.0}, {"META", 500.0}, {"TSLA", 180.0}, {"JPM", 200.0},
	{"V", 275.0}, {"SPY", 540.0}, {"QQQ", 470.0}, {"EURUSD", 1.085}, {"GBPUSD", 1.27}, {"USDJPY", 155.0},
	{"XAUUSD", 2350.0}, {"NFLX", 640.0}, {"AMD", 160.0}, {"INTC", 31.0}, {"ORCL", 125.0}, {"CRM", 260.0},
	{"ADBE", 520.0}, {"AVGO", 1400.0}, {"COST", 850.0}, {"WMT", 68.0}, {"KO", 62.0}, {"PEP", 170.0},
	{"DIS", 100.0}, {"BAC", 39.0}, {"XOM", 115.0}, {"JNJ", 150.0}, {"UNH", 510.0}, {"IWM", 205.0},
	{"AUDUSD", 0.665}, {"USDCHF", 0.90}, {"XAGUSD", 29.5},
}

type demoTopic struct {
	name, symbol string
	mid, tick    float64
	dec          int
	seq          uint64
}

func newDemoTopic(i int) *demoTopic {
	t := &demoTopic{}
	if i < len(known) {
		t.symbol, t.mid = known[i].sym, known[i].price
	} else {
		t.symbol = "SYM" + strconv.Itoa(i)
		t.mid = (1 + float64(i*7919%900)/100) * math.Pow(10, float64(i%5-1))
	}
	t.name = "demo:" + t.symbol
	t.tick = t.mid * 1e-4
	t.dec = 2
	for t.dec < 12 && t.tick*math.Pow(10, float64(t.dec)) < 1 {
		t.dec++
	}
	return t
}

func fixed(b *strings.Builder, units int64, dec int) {
	s := int64(math.Pow(10, float64(dec)))
	fmt.Fprintf(b, "%d.%0*d", units/s, dec, units%s)
}

// demoMessage: the keys, order and size rules of ringcast's demo feed.
func demoMessage(t *demoTopic, tsUs int64, size int, rng *rand.Rand) []byte {
	t.seq++
	t.mid = math.Max(t.mid+float64(rng.Intn(5)-2)*t.tick, 100*t.tick)
	scale := math.Pow(10, float64(t.dec))
	midU := int64(t.mid*scale + 0.5)
	spreadU := int64(t.tick*scale + 0.5)
	if spreadU < 1 {
		spreadU = 1
	}
	bid := midU - spreadU/2
	ask := bid + spreadU
	last := bid + rng.Int63n(spreadU+1)
	var qty [10]int64
	for i := range qty {
		qty[i] = 1 + rng.Int63n(9999)
	}
	var b strings.Builder
	for levels := 5; levels >= 0; levels-- {
		b.Reset()
		fmt.Fprintf(&b, `{"topic":"%s","seq":%d,"ts":%d,"type":"quote","symbol":"%s","bid":`, t.name, t.seq, tsUs, t.symbol)
		fixed(&b, bid, t.dec)
		b.WriteString(`,"ask":`)
		fixed(&b, ask, t.dec)
		b.WriteString(`,"last":`)
		fixed(&b, last, t.dec)
		b.WriteString(`,"bids":[`)
		for j := 0; j < levels; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			fixed(&b, bid-int64(j)*spreadU, t.dec)
			b.WriteByte(',')
			fixed(&b, qty[j], 3)
			b.WriteByte(']')
		}
		b.WriteString(`],"asks":[`)
		for j := 0; j < levels; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			fixed(&b, ask+int64(j)*spreadU, t.dec)
			b.WriteByte(',')
			fixed(&b, qty[5+j], 3)
			b.WriteByte(']')
		}
		b.WriteByte(']')
		if size == 0 || b.Len()+1 <= size {
			break
		}
	}
	gap := size - b.Len() - 1
	if gap >= 9 {
		b.WriteString(`,"pad":"`)
		b.WriteString(strings.Repeat("x", gap-9))
		b.WriteByte('"')
	} else if gap > 0 {
		b.WriteString(strings.Repeat(" ", gap))
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// SO_REUSEPORT on Linux (the syscall package does not name it)
const soReusePort = 0xf

type client struct {
	conn *websocket.Conn
	send chan *websocket.PreparedMessage
	once sync.Once
}

func (c *client) close() { c.once.Do(func() { c.conn.Close() }) }

type hub struct {
	mu   sync.RWMutex
	subs map[string]map[*client]struct{}
}

func (h *hub) publish(topic string, pm *websocket.PreparedMessage) {
	h.mu.RLock()
	for c := range h.subs[topic] {
		select {
		case c.send <- pm:
		default: // slow consumer: its queue is full
			go c.close()
		}
	}
	h.mu.RUnlock()
}

func prepared(v interface{}) *websocket.PreparedMessage {
	b, _ := json.Marshal(v)
	pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, b)
	return pm
}

func serveWS(h *hub, up *websocket.Upgrader, level int, w http.ResponseWriter, r *http.Request) {
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	if level > 0 {
		conn.SetCompressionLevel(level)
	}
	c := &client{conn: conn, send: make(chan *websocket.PreparedMessage, 256)}
	go func() { // writer
		for pm := range c.send {
			if err := c.conn.WritePreparedMessage(pm); err != nil {
				c.close()
				for range c.send {
				}
				return
			}
		}
	}()
	mine := map[string]struct{}{}
	defer func() {
		h.mu.Lock()
		for t := range mine {
			delete(h.subs[t], c)
		}
		h.mu.Unlock()
		c.close()
		close(c.send) // no publisher holds c any more
	}()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		var msg map[string]json.RawMessage
		var kind string
		if json.Unmarshal(data, &msg) != nil || json.Unmarshal(msg["type"], &kind) != nil {
			c.send <- prepared(map[string]string{"type": "error", "message": "Invalid JSON"})
			continue
		}
		switch kind {
		case "subscribe", "unsubscribe":
			key := "topics"
			for _, k := range []string{"channels", "markets", "topics"} {
				if _, ok := msg[k]; ok {
					key = k
					break
				}
			}
			var names []string
			json.Unmarshal(msg[key], &names)
			h.mu.Lock()
			for _, n := range names {
				if kind == "subscribe" {
					if h.subs[n] == nil {
						h.subs[n] = map[*client]struct{}{}
					}
					h.subs[n][c] = struct{}{}
					mine[n] = struct{}{}
				} else if _, ok := mine[n]; ok {
					delete(mine, n)
					delete(h.subs[n], c)
				}
			}
			h.mu.Unlock()
			list := make([]string, 0, len(mine))
			for n := range mine {
				list = append(list, n)
			}
			sort.Strings(list)
			c.send <- prepared(map[string]interface{}{"type": "subscribed", key: list})
		case "ping":
			c.send <- prepared(map[string]string{"type": "pong"})
		default:
			c.send <- prepared(map[string]string{"type": "error", "message": "Unknown message type: " + kind})
		}
	}
}

// publisher: rate messages/s over all topics, round robin: each tick publishes
// what came due since the last one, but never more than two ticks' worth (a
// server too busy to keep up publishes less, and its deliveries/s say so).
func publisher(h *hub, rate float64, size, ntopics int) {
	topics := make([]*demoTopic, ntopics)
	for i := range topics {
		topics[i] = newDemoTopic(i)
	}
	period := math.Min(0.1, math.Max(0.001, 1/rate))
	rng := rand.New(rand.NewSource(20261121))
	start := time.Now()
	var made, target int64
	next := 0
	tk := time.NewTicker(time.Duration(period * float64(time.Second)))
	for range tk.C {
		target = int64(time.Since(start).Seconds() * rate)
		if most := int64(math.Max(1, math.Ceil(2*rate*period))); target > made+most {
			made = target - most
		}
		ts := time.Now().UnixMicro()
		for ; made < target; made++ {
			t := topics[next]
			next = (next + 1) % len(topics)
			msg := demoMessage(t, ts, size, rng)
			h.mu.RLock()
			n := len(h.subs[t.name])
			h.mu.RUnlock()
			if n == 0 {
				continue
			}
			pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, msg)
			h.publish(t.name, pm)
		}
	}
}

func main() {
	host := flag.String("host", "127.0.0.1", "listen address")
	port := flag.Int("port", 9003, "listen port")
	rate := flag.Float64("demo-rate", 1000, "messages/s over all topics (0: no feed)")
	size := flag.Int("demo-size", 256, "bytes per message")
	ntopics := flag.Int("demo-topics", 32, "topics")
	deflate := flag.Bool("deflate", false, "negotiate permessage-deflate (gorilla: always no context takeover)")
	level := flag.Int("deflate-level", 1, "compression level with --deflate")
	reuse := flag.Bool("reuse-port", false, "SO_REUSEPORT: several processes on one port")
	feedOnSignal := flag.Bool("feed-on-signal", false, "start the feed on SIGUSR2 (perf/run sends it once every connection is up)")
	flag.Parse()

	h := &hub{subs: map[string]map[*client]struct{}{}}
	up := &websocket.Upgrader{
		ReadBufferSize: 1024, WriteBufferSize: 1024, EnableCompression: *deflate,
		CheckOrigin: func(*http.Request) bool { return true },
	}
	lvl := 0
	if *deflate {
		lvl = *level
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) { serveWS(h, up, lvl, w, r) })

	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		if *reuse {
			rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1) })
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf("%s:%d", *host, *port))
	if err != nil {
		log.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; os.Exit(0) }()
	if *rate > 0 {
		start := make(chan os.Signal, 1)
		if *feedOnSignal {
			signal.Notify(start, syscall.SIGUSR2)
		} else {
			start <- syscall.SIGUSR2
		}
		go func() { <-start; publisher(h, *rate, *size, *ntopics) }()
	}
	fmt.Printf("go-gorilla peer pid %d on %s:%d\n", os.Getpid(), *host, *port)
	log.Fatal(http.Serve(ln, mux))
}
