// The dashboard page: plain browser JavaScript with no build step, so that the package serves it as
// it is. It only reads the server's JSON API; ELK and uPlot come from the same server.
(() => {
  const REFRESH_MS = 2000;
  const FINAL = ['succeeded', 'failed', 'closed', 'cancelled', 'refunded', 'attention'];
  const COLORS = {
    inFlight: '#1d64d8',
    succeeded: '#12805c',
    failed: '#b42318',
    closed: '#7a8494',
    cancelled: '#9e77ed',
    refunded: '#0e9384',
    attention: '#dc6803',
  };
  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** State boxes by state path, filled once the statechart is laid out. */
  const boxes = new Map();
  let seriesPlot;
  let lagPlot;
  let searched = '';
  let shownPayment = '';
  let refreshes = 0;

  // ELK and uPlot are separate scripts, and either can be missing when this one runs: the file did
  // not arrive (a proxy, an extension that blocks it) or threw while loading (uPlot refuses a browser
  // locale such as `en-US@posix` with "Invalid language tag", leaving its global undefined). The page
  // then keeps every panel that does not need the missing one, and says in place what is missing.
  const elkLoaded = () => typeof ELK === 'function';
  const uPlotLoaded = () => typeof uPlot === 'function';

  function unavailable(holder, what, vendor) {
    holder.replaceChildren(
      html(
        'p',
        { class: 'unavailable', 'data-unavailable': vendor },
        `${what} unavailable: ${vendor} did not load`,
      ),
    );
  }

  // Every text from the store goes in through textContent or an attribute, never as markup: a
  // paymentRequestId is whatever the merchant chose.
  function html(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, String(value));
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, String(value));
    for (const child of children) node.append(child);
    return node;
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: { accept: 'application/json' } });
    const body = await response.json();
    if (!response.ok) {
      const error = new Error(body.error ?? `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function problem(message) {
    const node = document.getElementById('problem');
    node.textContent = message ?? '';
    node.hidden = !message;
  }

  const iso = (ms) => `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}Z`;
  const amountText = (amount) => (amount ? `${amount.value} ${amount.currency}` : '');

  /** An age as a queue shows it: its two largest units, e.g. `3h 12m`. */
  function age(ms) {
    let rest = Math.max(0, Math.floor(ms / 1000));
    const parts = [];
    for (const [unit, size] of [
      ['d', 86400],
      ['h', 3600],
      ['m', 60],
      ['s', 1],
    ]) {
      const count = Math.floor(rest / size);
      rest -= count * size;
      if (count > 0 || parts.length > 0) parts.push([count, unit]);
    }
    const shown = parts.slice(0, 2).filter(([count]) => count > 0);
    return shown.length === 0 ? '0s' : shown.map(([count, unit]) => `${count}${unit}`).join(' ');
  }

  function duration(ms) {
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
    if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
    return `${(ms / 3600000).toFixed(1)} h`;
  }

  // ---- statechart ------------------------------------------------------------------------------

  const textWidth = (text, px) => Math.ceil(text.length * px * 0.62);

  /**
   * Where an edge is drawn. Inside one compound state it joins the two states; one that leaves a
   * compound state is drawn from that compound state (and into the top-level state it enters), so
   * that the top level reads as the lifecycle's phases. Its title still names every transition.
   */
  function drawnEnds(source, target) {
    const a = source.split('.');
    const b = target.split('.');
    if (a.length > 1 && b.length > 1 && a[0] === b[0]) return { container: a[0], source, target };
    return { container: 'root', source: a[0], target: b[0] };
  }

  async function drawStatechart(chart) {
    const elkNodes = new Map();
    const states = new Map();
    function toElk(node) {
      states.set(node.id, node);
      const label = node.invokes.length > 0 ? `calls ${node.invokes.join(', ')}` : '';
      const elkNode =
        node.children.length > 0
          ? {
              id: node.id,
              layoutOptions: {
                'elk.algorithm': 'layered',
                'elk.direction': 'RIGHT',
                'elk.padding': '[top=32,left=12,bottom=12,right=12]',
                'elk.layered.spacing.nodeNodeBetweenLayers': '28',
                'elk.spacing.nodeNode': '12',
              },
              children: node.children.map(toElk),
              edges: [],
            }
          : {
              id: node.id,
              // The outcomes sit on one row at the bottom, where a reader looks for how things end.
              ...(node.type === 'final'
                ? { layoutOptions: { 'elk.layered.layering.layerConstraint': 'LAST' } }
                : {}),
              width: Math.max(96, textWidth(node.key, 12) + 48, textWidth(label, 10) + 16),
              height: label ? 50 : 38,
            };
      elkNodes.set(node.id, elkNode);
      return elkNode;
    }
    const root = {
      id: 'root',
      layoutOptions: {
        'elk.algorithm': 'layered',
        'elk.direction': 'DOWN',
        'elk.layered.nodePlacement.strategy': 'NETWORK_SIMPLEX',
        'elk.layered.spacing.nodeNodeBetweenLayers': '40',
        'elk.spacing.nodeNode': '24',
        'elk.spacing.edgeLabel': '2',
        'elk.edgeLabels.placement': 'CENTER',
        'elk.json.shapeCoords': 'ROOT',
        'elk.json.edgeCoords': 'ROOT',
      },
      children: chart.nodes.map(toElk),
      edges: [],
    };
    elkNodes.set('root', root);

    // Several guarded transitions often join the same two states: one line each would bury the
    // chart, so they are drawn as one, labelled with their events and titled with every guard.
    const merged = new Map();
    for (const edge of chart.edges) {
      // A transition back into its own state only re-arms a timer: it adds a loop and no meaning.
      if (edge.source === edge.target) continue;
      const ends = drawnEnds(edge.source, edge.target);
      const key = `${ends.source}>${ends.target}`;
      const entry = merged.get(key) ?? { ...ends, transitions: [] };
      entry.transitions.push(edge);
      merged.set(key, entry);
    }
    const edgeInfo = new Map();
    let n = 0;
    for (const entry of merged.values()) {
      const id = `edge${n++}`;
      const events = [...new Set(entry.transitions.map((t) => t.label.split(' [')[0]))].join(', ');
      edgeInfo.set(id, { ...entry, events });
      (elkNodes.get(entry.container) ?? root).edges.push({
        id,
        sources: [entry.source],
        targets: [entry.target],
        labels: [{ text: events, width: textWidth(events, 9), height: 11 }],
      });
    }

    const laid = await new ELK().layout(root);
    const pad = 8;
    const width = Math.ceil(laid.width + 2 * pad);
    const height = Math.ceil(laid.height + 2 * pad);
    const canvas = svg('svg', {
      width,
      height,
      viewBox: `${-pad} ${-pad} ${width} ${height}`,
      role: 'img',
      'aria-label': 'the lifecycle statechart with the number of lifecycles in each state',
    });
    canvas.append(
      svg(
        'defs',
        {},
        svg(
          'marker',
          {
            id: 'arrow',
            viewBox: '0 0 8 8',
            refX: 8,
            refY: 4,
            markerWidth: 7,
            markerHeight: 7,
            orient: 'auto',
          },
          svg('path', { class: 'arrowhead', d: 'M0,0 L8,4 L0,8 z' }),
        ),
      ),
    );

    const nodeLayer = svg('g', { class: 'states' });
    function drawNode(laidNode) {
      const state = states.get(laidNode.id);
      const classes = ['state', state.type];
      if (state.type === 'final') classes.push(state.key === 'attention' ? 'attention' : 'ok');
      const box = svg('g', { class: classes.join(' '), 'data-state': state.id, 'data-count': 0 });
      const x = laidNode.x;
      const y = laidNode.y;
      box.append(
        svg('rect', {
          x,
          y,
          width: laidNode.width,
          height: laidNode.height,
          rx: state.type === 'final' ? 14 : 6,
        }),
      );
      const title = svg('title');
      box.append(title);
      const compound = state.children.length > 0;
      box.append(svg('text', { x: x + 10, y: y + (compound ? 20 : 23) }, state.key));
      const count = svg(
        'text',
        { class: 'count', x: x + laidNode.width - 10, y: y + (compound ? 20 : 23), 'text-anchor': 'end' },
        '0',
      );
      box.append(count);
      if (state.invokes.length > 0) {
        box.append(
          svg('text', { class: 'invokes', x: x + 10, y: y + 40 }, `calls ${state.invokes.join(', ')}`),
        );
      }
      nodeLayer.append(box);
      boxes.set(state.id, { box, count, title });
      for (const child of laidNode.children ?? []) drawNode(child);
    }
    for (const child of laid.children) drawNode(child);
    canvas.append(nodeLayer);

    const edgeLayer = svg('g', { class: 'edges' });
    function drawEdges(laidNode) {
      for (const edge of laidNode.edges ?? []) {
        const info = edgeInfo.get(edge.id);
        const group = svg('g', { class: 'edge' });
        const lines = info.transitions.map((t) => `${t.source} → ${t.target}: ${t.label}`);
        group.append(svg('title', {}, lines.join('\n')));
        for (const section of edge.sections ?? []) {
          const points = [section.startPoint, ...(section.bendPoints ?? []), section.endPoint];
          const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x},${p.y}`).join(' ');
          group.append(svg('path', { d, 'marker-end': 'url(#arrow)' }));
        }
        for (const label of edge.labels ?? []) {
          if (label.x === undefined) continue;
          group.append(svg('text', { x: label.x, y: label.y + 9 }, label.text));
        }
        edgeLayer.append(group);
      }
      for (const child of laidNode.children ?? []) drawEdges(child);
    }
    drawEdges(laid);
    canvas.append(edgeLayer);

    const holder = document.getElementById('statechart');
    holder.replaceChildren(canvas);
  }

  /** Without ELK there is no layout: the states are listed, nested as in the machine, with the same counts. */
  function listStates(chart) {
    function item(node) {
      const count = html('span', { class: 'count' }, '0');
      const box = html(
        'li',
        { 'data-state': node.id, 'data-count': 0 },
        html('span', {}, node.key),
        ' ',
        count,
      );
      boxes.set(node.id, { box, count });
      if (node.children.length > 0) box.append(html('ul', {}, ...node.children.map(item)));
      return box;
    }
    const holder = document.getElementById('statechart');
    unavailable(holder, 'statechart', 'ELK');
    holder.append(html('ul', { class: 'state-list' }, ...chart.nodes.map(item)));
  }

  /** A state's count: the lifecycles in it, or, for a compound state, in any of its children. */
  function countOf(id, counts) {
    let total = 0;
    for (const [key, n] of Object.entries(counts)) if (key === id || key.startsWith(`${id}.`)) total += n;
    return total;
  }

  function renderCounts(counts) {
    for (const [id, { box, count, title }] of boxes) {
      const n = countOf(id, counts);
      box.setAttribute('data-count', String(n));
      box.classList.toggle('busy', n > 0);
      count.textContent = String(n);
      // The listed states (no ELK) have no tooltip: their line already reads as one.
      if (title) title.textContent = `${id}: ${n} lifecycle${n === 1 ? '' : 's'}`;
    }
  }

  // ---- totals and charts -----------------------------------------------------------------------

  function renderTotals(summary) {
    const entries = [
      ['all', 'lifecycles', summary.total],
      ['inFlight', 'in flight', summary.inFlight],
      ...FINAL.map((status) => [status, status, summary.outcomes[status] ?? 0]),
    ];
    const list = document.getElementById('totals');
    list.replaceChildren(
      ...entries.map(([key, label, value]) =>
        html(
          'div',
          { class: key, 'data-total': key, 'data-count': value },
          html('dt', {}, label),
          html('dd', {}, String(value)),
        ),
      ),
    );
  }

  function chartWidth(id) {
    return Math.max(320, document.getElementById(id).clientWidth - 8);
  }

  function renderSeries(series) {
    if (!uPlotLoaded()) {
      unavailable(document.getElementById('series'), 'chart', 'uPlot');
      return;
    }
    const data = [series.t, series.inFlight, ...FINAL.map((status) => series.outcomes[status])];
    if (!seriesPlot) {
      seriesPlot = new uPlot(
        {
          width: chartWidth('series'),
          height: 240,
          // The legend names the lines; values under the cursor would read "--" on a static page.
          legend: { live: false },
          scales: { x: { time: true } },
          series: [
            {},
            { label: 'in flight', stroke: COLORS.inFlight, width: 2 },
            ...FINAL.map((status) => ({ label: status, stroke: COLORS[status], width: 1.5 })),
          ],
          axes: [{}, { size: 56 }],
        },
        data,
        document.getElementById('series'),
      );
    } else {
      seriesPlot.setData(data);
    }
  }

  function bucketLabel(bucket, previous) {
    if (bucket.le === null) return `> ${duration(previous)}`;
    return `≤ ${duration(bucket.le)}`;
  }

  function renderLag(lag) {
    const labels = lag.buckets.map((bucket, i) => bucketLabel(bucket, lag.buckets[i - 1]?.le ?? 0));
    const xs = lag.buckets.map((_, i) => i);
    const data = [xs, lag.buckets.map((bucket) => bucket.count)];
    // The note below the chart is text: written first, it stays useful without the chart.
    const note = document.getElementById('lag-note');
    note.textContent =
      lag.known === 0
        ? `No outcome with a wallet paymentTime yet among the ${lag.finals} newest final lifecycles.`
        : `${lag.known} of the ${lag.finals} newest final lifecycles carry the wallet's paymentTime: ` +
          `p50 ${duration(lag.p50)}, p99 ${duration(lag.p99)}.`;
    if (!uPlotLoaded()) {
      unavailable(document.getElementById('lag'), 'chart', 'uPlot');
    } else if (!lagPlot) {
      lagPlot = new uPlot(
        {
          width: chartWidth('lag'),
          height: 240,
          legend: { show: false },
          scales: {
            x: { time: false, range: [-0.6, xs.length - 0.4] },
            y: { range: (_u, _min, max) => [0, Math.max(1, max)] },
          },
          series: [
            {},
            {
              label: 'outcomes',
              stroke: COLORS.succeeded,
              fill: 'rgba(18, 128, 92, 0.35)',
              paths: uPlot.paths.bars({ size: [0.8, 64] }),
              points: { show: false },
            },
          ],
          axes: [
            {
              splits: () => xs,
              values: (_u, splits) => splits.map((i) => labels[i] ?? ''),
              rotate: -40,
              size: 64,
              gap: 4,
            },
            { size: 48 },
          ],
        },
        data,
        document.getElementById('lag'),
      );
    } else {
      lagPlot.setData(data);
    }
  }

  // ---- attention queue ---------------------------------------------------------------------------

  function auditList(audit) {
    return html(
      'ol',
      { class: 'audit' },
      ...audit.map((entry) =>
        html(
          'li',
          {},
          `${iso(entry.at)} ${entry.from || '(new)'} → ${entry.to} (${entry.event}${entry.code ? `, ${entry.code}` : ''})`,
        ),
      ),
    );
  }

  function renderAttention(attention) {
    const open = new Set(
      [...document.querySelectorAll('#attention details[open]')].map((node) => node.dataset.for),
    );
    const rows = attention.items.map((item) => {
      const find = html('button', { type: 'button', class: 'link' }, item.paymentRequestId);
      find.addEventListener('click', () => search(item.paymentRequestId));
      const details = html(
        'details',
        { 'data-for': item.paymentRequestId },
        html('summary', {}, `${item.audit.length} transition${item.audit.length === 1 ? '' : 's'}`),
        auditList(item.audit),
      );
      details.open = open.has(item.paymentRequestId);
      return html(
        'tr',
        { 'data-payment-request-id': item.paymentRequestId },
        html('td', {}, find),
        html('td', {}, item.reason),
        html('td', { class: 'num' }, amountText(item.amount)),
        html('td', { class: 'num' }, age(item.ageMs)),
        html('td', { class: 'num' }, iso(item.decidedAt)),
        html('td', {}, details),
      );
    });
    document.querySelector('#attention tbody').replaceChildren(...rows);
    document.getElementById('attention-empty').hidden = rows.length > 0;
    document.getElementById('attention-count').textContent = String(rows.length);
  }

  // ---- search ------------------------------------------------------------------------------------

  function field(label, value, name) {
    return [html('dt', {}, label), html('dd', name ? { 'data-field': name } : {}, String(value))];
  }

  function renderPayment(payment) {
    const panel = document.getElementById('payment');
    panel.setAttribute('data-payment-request-id', payment.paymentRequestId);
    const facts = [
      ...field('state', payment.state, 'state'),
      ...field('final', payment.final ? 'yes' : 'no', 'final'),
      ...field('amount', amountText(payment.amount) || 'unknown', 'amount'),
      ...field('created', iso(payment.createdAt)),
      ...field('updated', iso(payment.updatedAt)),
    ];
    const outcome = payment.outcome;
    if (outcome) {
      facts.push(
        ...field('outcome', outcome.status, 'outcome'),
        ...field('decided by', `${outcome.decidedBy.source} (${outcome.decidedBy.code})`),
        ...field('decided at', iso(outcome.decidedAt)),
        ...field('inquiries', outcome.inquiries),
        ...field('cancel attempts', outcome.cancelAttempts),
      );
      if (outcome.attentionReason) facts.push(...field('needs a person', outcome.attentionReason, 'reason'));
      if (outcome.cancelReason) facts.push(...field('cancelled because', outcome.cancelReason));
      if (outcome.paymentTime) facts.push(...field('wallet paymentTime', outcome.paymentTime));
    }
    const audit = html(
      'table',
      { class: 'audit-table' },
      html(
        'thead',
        {},
        html('tr', {}, ...['at', 'from', 'to', 'event', 'code'].map((h) => html('th', {}, h))),
      ),
      html(
        'tbody',
        {},
        ...payment.audit.map((entry) =>
          html(
            'tr',
            { 'data-audit-to': entry.to },
            html('td', { class: 'num' }, iso(entry.at)),
            html('td', {}, entry.from || '(new)'),
            html('td', {}, entry.to),
            html('td', {}, entry.event),
            html('td', {}, entry.code ?? ''),
          ),
        ),
      ),
    );
    const notifications =
      payment.notifications.length === 0
        ? html('p', { class: 'meta' }, 'none')
        : html(
            'table',
            { class: 'notifications' },
            html(
              'thead',
              {},
              html('tr', {}, ...['received', 'result', 'applied', 'id'].map((h) => html('th', {}, h))),
            ),
            html(
              'tbody',
              {},
              ...payment.notifications.map((n) =>
                html(
                  'tr',
                  {},
                  html('td', { class: 'num' }, iso(n.receivedAt)),
                  html('td', {}, `${n.resultStatus} ${n.resultCode}`),
                  html('td', {}, n.applied ? 'yes' : 'no'),
                  html('td', {}, n.id),
                ),
              ),
            ),
          );
    panel.replaceChildren(
      html('h3', {}, payment.paymentRequestId),
      html('dl', {}, ...facts),
      html('h3', {}, `Audit history (${payment.audit.length})`),
      audit,
      html('h3', {}, `Notifications (${payment.notifications.length})`),
      notifications,
    );
  }

  async function loadPayment(id) {
    const panel = document.getElementById('payment');
    try {
      const payment = await getJson(`/api/payment/${encodeURIComponent(id)}`);
      // Refreshes re-draw the panel only when something changed, so reading it is not disturbed.
      const text = JSON.stringify(payment);
      if (text !== shownPayment || panel.dataset.paymentRequestId !== id) {
        shownPayment = text;
        renderPayment(payment);
      }
    } catch (error) {
      if (error.status !== 404 && error.status !== 400) throw error;
      shownPayment = '';
      panel.setAttribute('data-payment-request-id', id);
      panel.replaceChildren(html('p', { class: 'error', 'data-error': error.status }, error.message));
    }
  }

  function search(id) {
    searched = id.trim();
    document.getElementById('search').value = searched;
    if (!searched) return;
    loadPayment(searched).catch((error) => problem(`search failed: ${error.message}`));
  }

  // ---- refresh loop ------------------------------------------------------------------------------

  async function refresh() {
    try {
      const [summary, attention] = await Promise.all([getJson('/api/summary'), getJson('/api/attention')]);
      // Each panel is drawn on its own: one that throws (a chart library at odds with this browser)
      // must not keep the others, above all the attention queue a person acts on, from showing.
      const failed = [];
      for (const [panel, render] of [
        ['the state counts', () => renderCounts(summary.counts)],
        ['the totals', () => renderTotals(summary)],
        ['the outcomes chart', () => renderSeries(summary.series)],
        ['the decision lag', () => renderLag(summary.lag)],
        ['the attention queue', () => renderAttention(attention)],
      ]) {
        try {
          render();
        } catch (error) {
          failed.push(`${panel} (${error.message})`);
        }
      }
      if (searched) await loadPayment(searched);
      document.getElementById('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
      problem(failed.length > 0 ? `could not draw ${failed.join(', ')}` : '');
    } catch (error) {
      problem(`could not refresh: ${error.message}`);
    }
    refreshes += 1;
    // A hook for tests and scripts: how many refreshes have completed.
    document.body.setAttribute('data-refreshes', String(refreshes));
    setTimeout(refresh, REFRESH_MS);
  }

  async function start() {
    document.getElementById('search-form').addEventListener('submit', (event) => {
      event.preventDefault();
      search(document.getElementById('search').value);
    });
    try {
      const chart = await getJson('/api/machine');
      if (elkLoaded()) await drawStatechart(chart);
      else listStates(chart);
    } catch (error) {
      problem(`could not draw the statechart: ${error.message}`);
    }
    await refresh();
  }

  start();
})();
