/// The live status page (`GET /`): plain HTML and JS, no build step, fed by `GET /status/events`
/// (one JSON snapshot a second, ``StatusSnapshot``); `GET /?static` renders one snapshot of `GET /status`
/// and stays still. Embedded in the binary so a copied `chorus` needs no resource files.
enum StatusPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>Chorus coordinator</title>
        <style>
        body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
        h1 { font-size: 1.3em; margin: 0 0 .3em; }
        h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
        table { border-collapse: collapse; }
        td, th { padding: 2px 10px; text-align: right; border-bottom: 1px solid #ddd; }
        th:first-child, td:first-child { text-align: left; }
        .figures span { display: inline-block; margin-right: 2em; }
        .figures b { font-size: 1.4em; }
        .ready { color: #080; } .suspect { color: #b60; } .refused, .unknown { color: #a00; }
        .bar { display: inline-block; height: 12px; background: #47a; vertical-align: middle; }
        td.barcell { text-align: left; width: 310px; }
        .split { display: flex; height: 14px; width: 360px; margin: 1px 0; }
        .dw { background: #e9a23b; } .tf { background: #47a; } .vf { background: #6b6; }
        #state { color: #888; }
        </style>
        </head>
        <body>
        <h1>Chorus coordinator <small id="state">connecting…</small></h1>
        <div class="figures">
          <span>tokens/s (10 s) <b id="rate">–</b></span>
          <span>acceptance <b id="acc">–</b></span>
          <span>requests running <b id="active">–</b> waiting <b id="queued">–</b></span>
          <span>generated <b id="gen">–</b></span>
        </div>
        <h2>Workers</h2>
        <table id="workers"><thead><tr><th>worker</th><th>state</th><th>replies used</th>
        <th>misses</th><th>last reply ms</th><th>median ms</th></tr></thead><tbody></tbody></table>
        <h2>Acceptance per draft position</h2>
        <table id="positions"><tbody></tbody></table>
        <h2>Recent rounds: time split
          (<span class="dw">&nbsp;draft wait&nbsp;</span> <span class="tf">&nbsp;target&nbsp;</span>
          <span class="vf">&nbsp;verify&nbsp;</span>)</h2>
        <div id="rounds"></div>
        <script>
        const $ = (id) => document.getElementById(id);
        const fmt = (x, d = 1) => (x === null || x === undefined) ? "–" : Number(x).toFixed(d);
        function cell(row, text, cls) {
          const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td;
        }
        function render(s) {
          $("state").textContent = "live, up " + fmt(s.uptime_seconds, 0) + " s";
          $("rate").textContent = fmt(s.tokens_per_second);
          $("acc").textContent = fmt(100 * s.acceptance_rate) + " %";
          $("active").textContent = s.active_requests;
          $("queued").textContent = s.queued_requests;
          $("gen").textContent = s.generation_tokens;
          const wb = $("workers").tBodies[0]; wb.innerHTML = "";
          for (const w of s.workers) {
            const r = wb.insertRow();
            cell(r, w.id ? w.id + " (" + w.address + ")" : w.address);
            cell(r, w.state, w.state);
            cell(r, w.replies_used); cell(r, w.misses);
            cell(r, fmt(w.last_reply_ms, 2)); cell(r, fmt(w.median_reply_ms, 2));
          }
          const pb = $("positions").tBodies[0]; pb.innerHTML = "";
          s.acceptance_at_position.forEach((a, i) => {
            const r = pb.insertRow();
            cell(r, "position " + (i + 1));
            cell(r, fmt(100 * a) + " %");
            const bar = document.createElement("span"); bar.className = "bar";
            bar.style.width = Math.round(300 * a) + "px";
            const td = r.insertCell(); td.className = "barcell"; td.appendChild(bar);
          });
          const rounds = $("rounds"); rounds.innerHTML = "";
          const max = Math.max(1e-3, ...s.recent_rounds.map(
            (r) => r.draft_wait_ms + r.target_forward_ms + r.verification_ms));
          for (const r of s.recent_rounds.slice(-30)) {
            const row = document.createElement("div"); row.className = "split";
            row.title = r.tokens + " token(s), " + r.drafts + " draft(s)";
            for (const [k, cls] of [["draft_wait_ms", "dw"], ["target_forward_ms", "tf"], ["verification_ms", "vf"]]) {
              const part = document.createElement("span"); part.className = cls;
              part.style.width = (360 * r[k] / max) + "px"; row.appendChild(part);
            }
            rounds.appendChild(row);
          }
        }
        if (location.search.includes("static")) {
          // One snapshot, no live updates (printing, screenshots).
          fetch("status").then((r) => r.json()).then(render);
        } else {
          const events = new EventSource("status/events");
          events.onmessage = (e) => render(JSON.parse(e.data));
          events.onerror = () => { $("state").textContent = "disconnected, retrying…"; };
        }
        </script>
        </body>
        </html>
        """#
}
