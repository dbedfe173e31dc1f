// The workflow canvas: Vue Flow with typed ports. Python owns the document; this component draws
// it, reports what the user did (connect, move, delete, select, drop, pan/zoom) with $emit, and
// takes updates through methods Python calls with run_method (never by re-sending props).
import { h, inject, markRaw } from "vue";
import { Handle, Position, VueFlow, getBezierPath, getRectOfNodes, useVueFlow } from "@vue-flow/core";
import { Background } from "@vue-flow/background";
import { Controls } from "@vue-flow/controls";
import { MiniMap } from "@vue-flow/minimap";

export function compatible(source, target) {
  return source === target || source === "any" || target === "any" || (source === "integer" && target === "number");
}

const LARGE_GRAPH = 200; // nodes: beyond, the minimap waits until the graph is drawn
// The default view: fitted, but never so small that node text (13 px) drops below 12 px on
// screen; a graph too large for that starts at its top-left corner, the rest a scroll away.
const READABLE_ZOOM = 0.95;
const FIT_MAX_ZOOM = 1.25;
export const NOTE = "#note"; // the quick-add entry of a sticky note (no node type has a `#`)

// Each category's colour (node head, minimap) and icon.
export const CATEGORIES = {
  llm: { colour: "#7c3aed", icon: "✦" },
  text: { colour: "#0891b2", icon: "¶" },
  flow: { colour: "#d97706", icon: "⑂" },
  io: { colour: "#16a34a", icon: "⇄" },
  files: { colour: "#475569", icon: "▤" },
  tools: { colour: "#db2777", icon: "⚙" },
};
const OTHER = { colour: "#64748b", icon: "•" };
const category = (name) => CATEGORIES[name] || OTHER;
// A node's colours come from its category's class, not from a style of its own: elements styled
// by the same rules share one computed style in the browser, each inline style costs its own.
const colours = new CSSStyleSheet();
colours.replaceSync(
  [`.nl-node .nl-head { border-left-color: ${OTHER.colour}; } .nl-node .nl-icon { color: ${OTHER.colour}; }`]
    .concat(Object.entries(CATEGORIES).map(([name, kind]) => `.nl-cat-${name} .nl-head { border-left-color: ${kind.colour}; } .nl-cat-${name} .nl-icon { color: ${kind.colour}; }`))
    .join("\n"),
);
document.adoptedStyleSheets = [...document.adoptedStyleSheets, colours];

// A small, safe Markdown for sticky notes: the text is escaped first, then headings, lists,
// bold, italics, code and links (http(s) only) are marked up.
function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
export function markdown(text) {
  const inline = (line) =>
    line
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/\*([^*]+)\*/g, "<em>$1</em>")
      .replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2" target="_blank" rel="noopener">$1</a>');
  const out = [];
  let list = false;
  for (const raw of escapeHtml(text || "").split("\n")) {
    const item = raw.match(/^\s*[-*] (.*)$/);
    if (item && !list) out.push("<ul>");
    if (!item && list) out.push("</ul>");
    list = Boolean(item);
    const heading = raw.match(/^(#{1,3}) (.*)$/);
    if (item) out.push(`<li>${inline(item[1])}</li>`);
    else if (heading) out.push(`<h${heading[1].length + 2}>${inline(heading[2])}</h${heading[1].length + 2}>`);
    else if (raw.trim()) out.push(`<p>${inline(raw)}</p>`);
  }
  if (list) out.push("</ul>");
  return out.join("");
}

function portRow(nodeId, port, kind, error) {
  const about = `${port.name}: ${port.type}${port.many ? " (many)" : ""}`;
  const handle = h(Handle, {
    id: port.name,
    type: kind === "input" ? "target" : "source",
    position: kind === "input" ? Position.Left : Position.Right,
    class: `nl-port nl-type-${port.type}${error ? " nl-port-error" : ""}`,
    "data-port": `${nodeId}.${port.name}`,
    "data-type": port.type,
    "data-error": error || undefined,
    title: error ? `${about}\n${error}` : about,
  });
  return h("div", { class: `nl-row nl-${kind}` }, [handle, port.name]);
}

// A node and an edge are functional components (plain render functions, no component instance
// each: a large graph has thousands), the node's face one small component (see NodeBody). Vue
// Flow hands them a dozen props; those not declared would fall through onto the root element as
// attributes (`position="[object Object]"`, …).
function faceLines(id, d, loom) {
  // The node's key params; the main one (first) is edited in place by a double-click.
  if (d.editing && d.main) {
    return h("textarea", {
      class: "nl-edit nodrag nowheel nopan", "data-edit": id, rows: d.main.name === "template" ? 5 : 2,
      value: d.main.value,
      onKeydown: (e) => {
        e.stopPropagation();
        if (e.key === "Escape") loom.cancelEdit(id);
        else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.target.blur();
      },
      onBlur: (e) => loom.commitEdit(id, e.target.value),
      onVnodeMounted: ({ el }) => el.focus(),
    });
  }
  // The lines are the node's own children (no box around them: one element fewer per node).
  const last = d.lines.length - 1;
  return d.lines.map((line, index) => {
    const main = index === 0 && d.main;
    return h(
      "div",
      {
        class: `nl-line${index === 0 ? " nl-line-first" : ""}${index === last ? " nl-line-last" : ""}${main ? " nl-main-param" : ""}`,
        "data-face": `${id}.${line.label}`,
        title: main ? "double-click to edit" : undefined,
        onDblclick: main ? (e) => { e.stopPropagation(); loom.startEdit(id); } : undefined,
      },
      line.label === "template" ? line.text : [h("span", { class: "nl-label" }, line.label), line.text],
    );
  });
}

function nodeBody(id, d, loom) {
  const portErrors = (d.invalid && d.invalid.ports) || {};
  const kind = category(d.category);
  // Few elements per node: a large graph's first draw is mostly styling and laying them out.
  const children = [
    h("div", { class: "nl-head" }, [
      h("span", { class: "nl-icon" }, kind.icon), d.title, h("span", { class: "nl-id" }, id),
    ]),
    h("div", { class: "nl-ports" }, [
      ...d.inputs.map((port) => portRow(id, port, "input", portErrors[port.name])),
      ...d.outputs.map((port) => portRow(id, port, "output", portErrors[port.name])),
    ]),
  ];
  if (d.editing && d.main) children.push(h("div", { class: "nl-face" }, faceLines(id, d, loom)));
  else children.push(...faceLines(id, d, loom));
  if (d.progress) children.push(h("div", { class: "nl-progress", "data-progress": id }, d.progress));
  if (d.text) children.push(h("div", { class: "nl-text" }, d.text));
  else if (d.preview) children.push(h("div", { class: "nl-preview", "data-preview": id }, d.preview));
  if (d.error) children.push(h("div", { class: "nl-error" }, d.error));
  return h(
    "div",
    {
      class: ["nl-node", `nl-cat-${d.category}`, `nl-status-${d.status || "idle"}`, d.invalid ? "nl-invalid" : "", d.diff ? `nl-diff-${d.diff}` : ""],
      "data-node-id": id,
      "data-status": d.status || "idle",
      "data-category": d.category,
      "data-diff": d.diff || undefined,
      title: d.reason || (d.invalid && d.invalid.message) || "",
    },
    children,
  );
}
// What a node shows is drawn again only when its data changes: Vue Flow draws its node wrapper
// again on every measure, move or selection, and would otherwise compare a whole face each time
// (2,000 of them after a large graph's first measure).
const NodeBody = {
  name: "NodeBody",
  props: ["id", "data"],
  setup(props) {
    const loom = inject("loom");
    return () => nodeBody(props.id, props.data, loom);
  },
};
function LoomNode({ id, data }) {
  return h(NodeBody, { id, data });
}
LoomNode.props = ["id", "data", "selected"];
LoomNode.inheritAttrs = false;

// A sticky note: Markdown, edited in place by a double-click.
function NoteNode({ id, data: d }) {
  const loom = inject("loom");
  const note = id.slice(NOTE.length + 1);
  if (d.editing) {
    return h("div", { class: "nl-note", "data-note-id": note }, [
      h("textarea", {
        class: "nl-edit nodrag nowheel nopan", rows: 6, value: d.text,
        onKeydown: (e) => {
          e.stopPropagation();
          if (e.key === "Escape") loom.cancelEdit(id);
          else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.target.blur();
        },
        onBlur: (e) => loom.commitEdit(id, e.target.value),
        onVnodeMounted: ({ el }) => el.focus(),
      }),
    ]);
  }
  return h("div", {
    class: "nl-note", "data-note-id": note, title: "double-click to edit",
    onDblclick: (e) => { e.stopPropagation(); loom.startEdit(id); },
    innerHTML: markdown(d.text) || "<p class='nl-placeholder'>Double-click to write</p>",
  });
}
NoteNode.props = ["id", "data", "selected"];
NoteNode.inheritAttrs = false;

// An edge is two plain paths (what Vue Flow's BaseEdge draws, without its component): the visible
// one, and a wide transparent one that is easy to click.
function LoomEdge(props) {
  const [path] = getBezierPath(props);
  const diff = props.data.diff;
  return h("g", { "data-edge": props.data.label, "data-diff": diff || undefined }, [
    h("path", { id: props.id, d: path, class: diff ? `vue-flow__edge-path nl-diff-${diff}` : "vue-flow__edge-path", style: props.style }),
    h("path", { d: path, class: "vue-flow__edge-interaction", fill: "none", "stroke-width": 16, "stroke-opacity": 0 }),
  ]);
}
LoomEdge.props = ["id", "sourceX", "sourceY", "targetX", "targetY", "sourcePosition", "targetPosition", "data", "style"];
LoomEdge.inheritAttrs = false;

export default {
  template: `
    <div class="nl-canvas" tabindex="0" @dragover.prevent="onDragOver" @drop.prevent="onDrop"
         @wheel.capture="autoFit = false" @mousedown.capture="autoFit = false"
         @dblclick="onCanvasDoubleClick" @keydown="onKey" @mousemove.passive="onMouseMove">
      <VueFlow :id="flowId" :node-types="nodeTypes" :edge-types="edgeTypes" :min-zoom="0.1" :max-zoom="2"
               :is-valid-connection="isValidConnection" :delete-key-code="locked ? null : ['Delete', 'Backspace']"
               :default-viewport="viewport || {x: 0, y: 0, zoom: 1}" :zoom-on-double-click="false"
               :nodes-draggable="!locked" :nodes-connectable="!locked"
               multi-selection-key-code="Shift" :apply-default="false"
               @nodes-change="onNodesChange" @edges-change="onEdgesChange" @connect="onConnect"
               @connect-start="onConnectStart" @connect-end="onConnectEnd"
               @node-drag-stop="onDragStop" @pane-ready="onReady" @node-double-click="onNodeOpen"
               @nodes-initialized="onNodesInitialized">
        <Background />
        <!-- Shown late, inside a box of its own: an element inserted among .vue-flow's children
             would make the browser restyle the whole graph. -->
        <div class="nl-minimap-slot"><MiniMap v-if="minimap" pannable zoomable :node-color="minimapColour" /></div>
        <Controls />
      </VueFlow>
      <div v-if="locked" class="nl-readonly" data-readonly>{{ locked }}</div>
      <div v-if="quick" class="nl-quick" data-quick-add :style="{left: quick.left + 'px', top: quick.top + 'px'}"
           @mousedown.stop @dblclick.stop @wheel.stop>
        <input class="nl-quick-search" data-quick-search placeholder="Add a node…" v-model="quick.query"
               @keydown.stop="onQuickKey" />
        <div class="nl-quick-hint" v-if="quick.from">types with an input for {{ quick.from.type }}</div>
        <div v-for="(item, index) in quickItems" :key="item.type" :data-quick-type="item.type"
             :class="['nl-quick-item', index === quick.index ? 'nl-quick-active' : '']"
             @mousedown.prevent="chooseQuick(item)">
          <span class="nl-icon" :style="{color: colourOf(item.category)}">{{ iconOf(item.category) }}</span>
          {{ item.title }} <span class="nl-quick-category">{{ item.category }}</span>
        </div>
        <div v-if="!quickItems.length" class="nl-quick-hint">no node type fits</div>
      </div>
      <div v-if="help" class="nl-help" data-shortcuts @click="help = false">
        <div class="nl-help-card">
          <div class="nl-help-title">Shortcuts</div>
          <div v-for="row in shortcuts" class="nl-help-row"><kbd>{{ row[0] }}</kbd><span>{{ row[1] }}</span></div>
        </div>
      </div>
    </div>`,
  components: { VueFlow, Background, Controls, MiniMap },
  props: { flowId: String, graph: String, viewport: Object, selection: Array, catalogue: Array, readOnly: String },
  setup(props) {
    return { flow: useVueFlow(props.flowId) };
  },
  provide() {
    return {
      loom: markRaw({
        startEdit: (id) => this.startEdit(id),
        commitEdit: (id, value) => this.commitEdit(id, value),
        cancelEdit: (id) => this.cancelEdit(id),
      }),
    };
  },
  data() {
    // Every node is drawn, in view or not: drawing only the visible ones (Vue Flow's
    // only-render-visible-elements) re-filters every node on each change and mounts nodes
    // anew while panning, which cost more than it saved (bench/ui_load.py).
    // The first graph comes as JSON text: plain objects, never proxied by Vue.
    this.firstGraph = this.graph ? JSON.parse(this.graph) : { nodes: [], edges: [] };
    const large = this.firstGraph.nodes.length > LARGE_GRAPH;
    return {
      nodeTypes: markRaw({ loom: LoomNode, note: NoteNode }), edgeTypes: markRaw({ loom: LoomEdge }), refusal: null, connecting: false,
      fitPending: false, large, pending: new Set(), removal: null, loads: 0, autoFit: false, minimap: !large,
      quick: null, help: false, locked: this.readOnly || "", started: null, connected: false, mouse: null,
      shortcuts: [
        ["double-click the canvas, or /", "add a node there (type to search)"],
        ["drag a port to empty canvas", "add a node that takes it, connected"],
        ["double-click a node's text", "edit its main param in place"],
        ["Ctrl+Z · Ctrl+Shift+Z", "undo · redo"],
        ["Ctrl+C · Ctrl+V", "copy · paste nodes"],
        ["Delete · Backspace", "delete the selection"],
        ["Shift+click", "select several"],
        ["?", "this help"],
        ["Escape", "close a list or this help"],
      ],
    };
  },
  computed: {
    quickItems() {
      if (!this.quick) return [];
      const words = this.quick.query.toLowerCase().split(/\s+/).filter(Boolean);
      const from = this.quick.from;
      const items = [
        ...(from ? [] : [{ type: NOTE, title: "Sticky note", category: "note", description: "a Markdown comment" }]),
        ...(this.catalogue || []).filter((item) => !from || this.takes(item, from.type)),
      ];
      return items.filter((item) => {
        const text = `${item.title} ${item.type} ${item.category} ${item.description || ""}`.toLowerCase();
        return words.every((word) => text.includes(word));
      });
    },
  },
  mounted() {
    this.load(this.firstGraph, this.selection || []);
    this.firstGraph = null;
    // Until the user pans or zooms, a graph without a saved view is kept fitted to the canvas,
    // whose size settles only after the page's layout does.
    this.resizes = new ResizeObserver(() => {
      if (this.autoFit) this.fit();
    });
    this.resizes.observe(this.$el);
    // Pan and zoom by any means (wheel, drag, the controls, fit-view) end up in the view state.
    let timer = null;
    this.$watch(
      () => this.flow.viewport.value,
      () => {
        clearTimeout(timer);
        timer = setTimeout(() => this.$emit("viewport", this.flow.getViewport()), 250);
      },
      { deep: true },
    );
  },
  unmounted() {
    this.resizes.disconnect();
  },
  methods: {
    // -- from Python ----------------------------------------------------------------------------
    load(graph, selection = []) {
      this.flow.setEdges([]);
      this.flow.setNodes([
        ...graph.nodes.map((node) => ({ ...this.toFlowNode(node), selected: selection.includes(node.id) })),
        ...(graph.notes || []).map((note) => this.toNoteNode(note)),
      ]);
      // Edges once the nodes are measured: drawn before, each edge would be drawn twice, first
      // from handles not yet measured, then again.
      const edges = graph.edges.map((edge) => this.toFlowEdge(edge));
      const loading = ++this.loads;
      const measured = () => this.flow.getNodes.value.every((node) => node.dimensions.width > 0);
      let frames = 0;
      const draw = () => {
        if (this.loads !== loading) return; // a newer load took over
        if (!measured() && frames++ < 120) return requestAnimationFrame(draw); // at most ~2 s
        this.flow.setEdges(edges);
        if (this.diffMarks) this.setDiff(this.diffMarks); // marks given before the edges were drawn
        if (loading === 1) this.$emit("drawn", {}); // the first graph: all of it is drawn
        // A large graph's minimap (a shape per node) waits until the graph itself is drawn and
        // the browser has nothing else to do (at most 2 s): the graph can be used meanwhile.
        if (!this.minimap) requestIdleCallback(() => (this.minimap = true), { timeout: 2000 });
      };
      this.$nextTick(draw);
      // Fit once the nodes are measured (a fit before that lands at the minimum zoom).
      if (!this.viewport) this.fitPending = this.autoFit = true;
    },
    fit() {
      const nodes = this.flow.getNodes.value;
      const box = this.$el.getBoundingClientRect();
      if (!nodes.length || !box.width) return this.flow.fitView({ padding: 0.15, maxZoom: FIT_MAX_ZOOM });
      const bounds = getRectOfNodes(nodes);
      const fitted = Math.min(box.width / (bounds.width * 1.15), box.height / (bounds.height * 1.15));
      if (fitted >= READABLE_ZOOM) return this.flow.fitView({ padding: 0.15, maxZoom: FIT_MAX_ZOOM });
      // Too large to fit readably: readable, from the graph's top-left corner (centred across
      // the direction that fits).
      const zoom = READABLE_ZOOM;
      const x = bounds.width * zoom < box.width ? (box.width - bounds.width * zoom) / 2 : 40;
      const y = bounds.height * zoom < box.height ? (box.height - bounds.height * zoom) / 2 : 40;
      this.flow.setViewport({ x: x - bounds.x * zoom, y: y - bounds.y * zoom, zoom });
    },
    setDiff(marks) {
      // marks: {nodes: {id: "added" | "removed" | "changed"}, edges: {label: ...}}; null: none
      this.diffMarks = marks;
      const nodes = (marks && marks.nodes) || {};
      const edges = (marks && marks.edges) || {};
      for (const node of this.flow.getNodes.value) {
        if (node.type === "loom" && (nodes[node.id] || node.data.diff)) this.flow.updateNodeData(node.id, { diff: nodes[node.id] || null });
      }
      for (const edge of this.flow.getEdges.value) {
        const diff = edges[edge.id] || null;
        if (diff || edge.data.diff) edge.data = { ...edge.data, diff };
      }
    },
    setReadOnly(text) {
      // text: why the graph drawn cannot be changed (a version opened, a diff); "": editable
      this.locked = text || "";
      this.quick = null;
    },
    addNote(note) {
      this.flow.addNodes([this.toNoteNode(note)]);
    },
    updateNote(note) {
      this.flow.updateNodeData(`${NOTE}:${note.id}`, { text: note.text, editing: false });
    },
    setViewport(viewport) {
      this.flow.setViewport(viewport);
    },
    addNode(node) {
      this.flow.addNodes([this.toFlowNode(node)]);
    },
    updateNode(node) {
      this.flow.updateNode(node.id, { data: this.nodeData(node, this.flow.findNode(node.id)?.data) });
      // Ports may have come or gone: measure the handles again so that edges can reach them.
      this.$nextTick(() => this.flow.updateNodeInternals([node.id]));
    },
    removeNodes(ids) {
      for (const id of ids) this.pending.add(id);
      for (const edge of this.flow.getEdges.value) if (ids.includes(edge.source) || ids.includes(edge.target)) this.pending.add(edge.id);
      this.flow.removeNodes(ids);
    },
    addEdge(edge) {
      this.flow.addEdges([this.toFlowEdge(edge)]);
    },
    removeEdge(id) {
      this.pending.add(id);
      this.flow.removeEdges([id]);
    },
    moveNodes(positions) {
      for (const [id, pos] of Object.entries(positions)) this.flow.updateNode(id, { position: pos });
    },
    setStates(states) {
      // states: {node: {status, reason, text, error}}; unknown keys keep their value
      for (const [id, state] of Object.entries(states)) {
        const node = this.flow.findNode(id);
        if (node) this.flow.updateNodeData(id, state);
      }
    },
    appendText(id, text) {
      const node = this.flow.findNode(id);
      if (node) this.flow.updateNodeData(id, { text: (node.data.text || "") + text });
    },
    clearStates() {
      for (const node of this.flow.getNodes.value) {
        if (node.type !== "loom") continue;
        this.flow.updateNodeData(node.id, {
          status: "idle", reason: "", text: "", error: "", invalid: null, progress: "", preview: "",
        });
      }
    },
    markInvalid(marks) {
      // marks: {node: {ports: {port: message}, message}}; a node left out is valid
      for (const node of this.flow.getNodes.value) {
        const mark = marks[node.id] || null;
        if (mark || node.data.invalid) this.flow.updateNodeData(node.id, { invalid: mark });
      }
    },
    select(ids) {
      for (const node of this.flow.getNodes.value) node.selected = ids.includes(node.id);
    },
    // -- helpers --------------------------------------------------------------------------------
    nodeData(node, previous) {
      return {
        ...(previous || {}),
        title: node.title,
        category: node.category,
        lines: markRaw(node.lines || []),
        main: node.main ? markRaw(node.main) : null,
        editing: false,
        inputs: markRaw(node.inputs), // replaced, never changed in place: no need to watch them
        outputs: markRaw(node.outputs),
        status: (previous && previous.status) || "idle",
      };
    },
    toFlowNode(node) {
      return { id: node.id, type: "loom", position: { x: node.x || 0, y: node.y || 0 }, data: this.nodeData(node) };
    },
    toNoteNode(note) {
      return {
        id: `${NOTE}:${note.id}`, type: "note", position: { x: note.x || 0, y: note.y || 0 },
        data: { text: note.text || "", editing: false },
      };
    },
    // -- in-place edits ---------------------------------------------------------------------
    startEdit(id) {
      if (this.locked) return;
      this.flow.updateNodeData(id, { editing: true });
    },
    cancelEdit(id) {
      this.flow.updateNodeData(id, { editing: false }); // the blur that follows finds it so
    },
    commitEdit(id, value) {
      const node = this.flow.findNode(id);
      if (!node || !node.data.editing) return;
      this.flow.updateNodeData(id, { editing: false });
      if (node.type === "note") {
        this.flow.updateNodeData(id, { text: value });
        this.$emit("note-edit", { id: id.slice(NOTE.length + 1), text: value });
      } else if (node.data.main && value !== node.data.main.value) {
        this.$emit("param-edit", { id, name: node.data.main.name, value });
      }
    },
    // -- quick add --------------------------------------------------------------------------
    takes(item, type) {
      return item.dynamic_ports || (item.inputs || []).some((port) => compatible(type, port.type || "any"));
    },
    colourOf(name) {
      return name === "note" ? "#ca8a04" : category(name).colour;
    },
    iconOf(name) {
      return name === "note" ? "✎" : category(name).icon;
    },
    minimapColour(node) {
      return node.type === "note" ? "#fde68a" : category(node.data.category).colour;
    },
    openQuick(clientX, clientY, from = null) {
      if (this.locked) return;
      const box = this.$el.getBoundingClientRect();
      const at = this.flow.screenToFlowCoordinate({ x: clientX, y: clientY });
      this.quick = {
        query: "", index: 0, from, x: Math.round(at.x), y: Math.round(at.y),
        left: Math.min(clientX - box.left, box.width - 260), top: Math.min(clientY - box.top, box.height - 300),
      };
      this.$nextTick(() => this.$el.querySelector("[data-quick-search]")?.focus());
    },
    onQuickKey(event) {
      const count = this.quickItems.length;
      if (event.key === "Escape") this.quick = null;
      else if (event.key === "ArrowDown") this.quick.index = (this.quick.index + 1) % Math.max(count, 1);
      else if (event.key === "ArrowUp") this.quick.index = (this.quick.index - 1 + count) % Math.max(count, 1);
      else if (event.key === "Enter" && count) this.chooseQuick(this.quickItems[Math.min(this.quick.index, count - 1)]);
      else return;
      event.preventDefault();
    },
    chooseQuick(item) {
      const { x, y, from } = this.quick;
      this.quick = null;
      if (item.type === NOTE) this.$emit("note-add", { x, y });
      else this.$emit("quick-add", { type: item.type, x, y, from: from ? from.port : null });
      this.$el.focus();
    },
    onCanvasDoubleClick(event) {
      const target = event.target;
      if (!target.closest || target.closest(".vue-flow__node, .vue-flow__controls, .vue-flow__minimap, .nl-quick")) return;
      if (!target.closest(".vue-flow__pane")) return;
      this.openQuick(event.clientX, event.clientY);
    },
    onMouseMove(event) {
      this.mouse = { x: event.clientX, y: event.clientY };
    },
    onKey(event) {
      const target = event.target;
      if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
      if (event.key === "Escape") {
        this.quick = null;
        this.help = false;
      } else if (event.key === "?") {
        this.help = !this.help;
      } else if (event.key === "/") {
        const box = this.$el.getBoundingClientRect();
        const inside = this.mouse && this.mouse.x >= box.left && this.mouse.x <= box.right && this.mouse.y >= box.top && this.mouse.y <= box.bottom;
        const at = inside ? this.mouse : { x: box.left + box.width / 2, y: box.top + box.height / 3 };
        this.openQuick(at.x, at.y);
      } else return;
      event.preventDefault();
    },
    toFlowEdge(edge) {
      const [source, sourceHandle] = edge.from.split(".");
      const [target, targetHandle] = edge.to.split(".");
      return { id: `${edge.from}->${edge.to}`, type: "loom", source, sourceHandle, target, targetHandle, data: { label: `${edge.from}->${edge.to}` } };
    },
    portOf(nodeId, handle, kind) {
      const node = this.flow.findNode(nodeId);
      if (!node) return null;
      return (kind === "input" ? node.data.inputs : node.data.outputs).find((port) => port.name === handle) || null;
    },
    isValidConnection(connection) {
      const source = this.portOf(connection.source, connection.sourceHandle, "output");
      const target = this.portOf(connection.target, connection.targetHandle, "input");
      if (!source || !target) return false;
      let refusal = null;
      if (connection.source === connection.target) refusal = "a node cannot feed itself";
      else if (!compatible(source.type, target.type)) refusal = `${source.type} cannot go into ${target.type} (${connection.target}.${target.name})`;
      else if (!target.many && this.flow.getEdges.value.some((e) => e.id !== connection.id && e.target === connection.target && e.targetHandle === connection.targetHandle)) {
        refusal = `${connection.target}.${target.name} already has an input`;
      }
      this.refusal = refusal;
      return refusal === null;
    },
    // -- to Python ------------------------------------------------------------------------------
    onConnectStart(params) {
      this.refusal = null;
      this.connecting = true;
      this.connected = false;
      this.started = params && params.handleType === "source" ? params : null;
    },
    onConnectEnd(event) {
      const target = event && event.target && event.target.closest ? event.target : null;
      const onEmptyCanvas = target && target.closest(".vue-flow__pane") && !target.closest(".vue-flow__node, .vue-flow__handle");
      if (this.connecting && !this.connected && this.started && onEmptyCanvas) {
        // A port dropped on empty canvas (a refusal met on the way no longer holds): the types
        // that can take it, to add there connected.
        const point = event.changedTouches ? event.changedTouches[0] : event;
        const port = this.portOf(this.started.nodeId, this.started.handleId, "output");
        if (port) this.openQuick(point.clientX, point.clientY, { port: `${this.started.nodeId}.${port.name}`, type: port.type });
      } else if (this.connecting && this.refusal) this.$emit("refused", { reason: this.refusal });
      this.connecting = false;
      this.started = null;
      this.refusal = null;
    },
    onConnect(connection) {
      this.connected = true;
      this.refusal = null;
      this.$emit("connect", {
        from: `${connection.source}.${connection.sourceHandle}`,
        to: `${connection.target}.${connection.targetHandle}`,
      });
    },
    // With apply-default off, every change (ours included) arrives here first: additions and
    // removals Python asked for are applied, a removal by the user (Delete) goes to Python,
    // which removes the node from the document and then from the drawing.
    onNodeOpen({ node }) {
      if (node.type === "loom") this.$emit("open", { id: node.id });
    },
    onNodesChange(changes) {
      // Vue Flow has set a measured node's dimensions itself; applying them again would only cost
      // a pass over every node per change (O(n²) on a first draw).
      changes = changes.filter((c) => c.type !== "dimensions");
      const removed = this.split(changes);
      if (removed.asked.length) this.flow.applyNodeChanges(removed.asked);
      if (removed.ids.length) this.userRemoved("nodes", removed.ids);
      if (changes.some((c) => c.type === "select")) this.$emit("selection", { ids: this.flow.getSelectedNodes.value.filter((n) => n.type === "loom").map((n) => n.id) });
    },
    onEdgesChange(changes) {
      const removed = this.split(changes);
      if (removed.asked.length) this.flow.applyEdgeChanges(removed.asked);
      if (removed.ids.length) this.userRemoved("edges", removed.ids);
    },
    userRemoved(kind, ids) {
      // One Delete gesture arrives as node and edge changes in turn: gather them, then tell Python
      // once, so that it is one step to undo. An edge of a deleted node goes with the node.
      if (!this.removal) {
        this.removal = { nodes: new Set(), edges: new Set() };
        queueMicrotask(() => this.flushRemoval());
      }
      for (const id of ids) this.removal[kind].add(id);
    },
    flushRemoval() {
      const { nodes, edges } = this.removal;
      this.removal = null;
      const loose = [...edges].filter((id) => {
        const edge = this.flow.findEdge(id);
        return edge && !(nodes.has(edge.source) || nodes.has(edge.target));
      });
      if (nodes.size) this.$emit("remove-nodes", { ids: [...nodes], edges: loose });
      else if (loose.length) this.$emit("remove-edges", { ids: loose });
    },
    split(changes) {
      // The changes to apply now, and the ids the user removed (for Python to decide on).
      const asked = [];
      const ids = [];
      for (const change of changes) {
        if (change.type === "remove" && !this.pending.has(change.id)) ids.push(change.id);
        else {
          this.pending.delete(change.id);
          asked.push(change);
        }
      }
      return { asked, ids };
    },
    onDragStop(event) {
      const moved = {};
      for (const node of event.nodes) moved[node.id] = { x: Math.round(node.position.x), y: Math.round(node.position.y) };
      this.$emit("move", { positions: moved });
    },
    onReady() {
      this.$emit("ready", {});
    },
    onNodesInitialized() {
      if (!this.fitPending) return;
      this.fitPending = false;
      this.fit();
    },
    onDragOver(event) {
      if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
    },
    onDrop(event) {
      if (this.locked) return;
      const type = event.dataTransfer && event.dataTransfer.getData("application/x-nodeloom-type");
      if (!type) return;
      const position = this.flow.screenToFlowCoordinate({ x: event.clientX, y: event.clientY });
      this.$emit("palette-drop", { type, x: Math.round(position.x), y: Math.round(position.y) });
    },
  },
};
