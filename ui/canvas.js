// The workflow canvas: Vue Flow with typed ports. Python owns the document; this component draws
// it, reports what the user did (connect, move, delete, select, drop, pan/zoom) with $emit, and
// takes updates through methods Python calls with run_method (never by re-sending props).
import { h, markRaw, toRaw } from "vue";
import { Handle, Position, VueFlow, getBezierPath, useVueFlow } from "@vue-flow/core";
import { Background } from "@vue-flow/background";
import { Controls } from "@vue-flow/controls";
import { MiniMap } from "@vue-flow/minimap";

export function compatible(source, target) {
  return source === target || source === "any" || target === "any" || (source === "integer" && target === "number");
}

const LARGE_GRAPH = 200; // nodes: beyond, the minimap waits until the graph is drawn

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
// each: a large graph has hundreds). Vue Flow hands them a dozen props; those not declared would
// fall through onto the root element as attributes (`position="[object Object]"`, …).
function LoomNode({ id, data: d }) {
  const portErrors = (d.invalid && d.invalid.ports) || {};
  // Few elements per node: a large graph's first draw is mostly styling and laying them out.
  const children = [
    h("div", { class: "nl-head" }, [d.title, h("span", { class: "nl-id" }, id)]),
    h("div", { class: "nl-ports" }, [
      ...d.inputs.map((port) => portRow(id, port, "input", portErrors[port.name])),
      ...d.outputs.map((port) => portRow(id, port, "output", portErrors[port.name])),
    ]),
  ];
  if (d.progress) children.push(h("div", { class: "nl-progress", "data-progress": id }, d.progress));
  if (d.text) children.push(h("div", { class: "nl-text" }, d.text));
  if (d.error) children.push(h("div", { class: "nl-error" }, d.error));
  return h(
    "div",
    {
      class: ["nl-node", `nl-status-${d.status || "idle"}`, d.invalid ? "nl-invalid" : ""],
      "data-node-id": id,
      "data-status": d.status || "idle",
      title: d.reason || (d.invalid && d.invalid.message) || "",
    },
    children,
  );
}
LoomNode.props = ["id", "data", "selected"];
LoomNode.inheritAttrs = false;

// An edge is two plain paths (what Vue Flow's BaseEdge draws, without its component): the visible
// one, and a wide transparent one that is easy to click.
function LoomEdge(props) {
  const [path] = getBezierPath(props);
  return h("g", { "data-edge": props.data.label }, [
    h("path", { id: props.id, d: path, class: "vue-flow__edge-path", style: props.style }),
    h("path", { d: path, class: "vue-flow__edge-interaction", fill: "none", "stroke-width": 16, "stroke-opacity": 0 }),
  ]);
}
LoomEdge.props = ["id", "sourceX", "sourceY", "targetX", "targetY", "sourcePosition", "targetPosition", "data", "style"];
LoomEdge.inheritAttrs = false;

export default {
  template: `
    <div class="nl-canvas" @dragover.prevent="onDragOver" @drop.prevent="onDrop"
         @wheel.capture="autoFit = false" @mousedown.capture="autoFit = false">
      <VueFlow :id="flowId" :node-types="nodeTypes" :edge-types="edgeTypes" :min-zoom="0.1" :max-zoom="2"
               :is-valid-connection="isValidConnection" :delete-key-code="['Delete', 'Backspace']"
               :default-viewport="viewport || {x: 0, y: 0, zoom: 1}"
               multi-selection-key-code="Shift" :apply-default="false"
               @nodes-change="onNodesChange" @edges-change="onEdgesChange" @connect="onConnect"
               @connect-start="onConnectStart" @connect-end="onConnectEnd"
               @node-drag-stop="onDragStop" @pane-ready="onReady" @node-double-click="onNodeOpen"
               @nodes-initialized="onNodesInitialized">
        <Background />
        <MiniMap v-if="minimap" pannable zoomable />
        <Controls />
      </VueFlow>
    </div>`,
  components: { VueFlow, Background, Controls, MiniMap },
  props: { flowId: String, graph: Object, viewport: Object, selection: Array },
  setup(props) {
    return { flow: useVueFlow(props.flowId) };
  },
  data() {
    // Every node is drawn, in view or not: drawing only the visible ones (Vue Flow's
    // only-render-visible-elements) re-filters every node on each change and mounts nodes
    // anew while panning, which cost more than it saved (bench/ui_load.py).
    const large = ((this.graph && this.graph.nodes) || []).length > LARGE_GRAPH;
    return {
      nodeTypes: markRaw({ loom: LoomNode }), edgeTypes: markRaw({ loom: LoomEdge }), refusal: null, connecting: false,
      fitPending: false, large, pending: new Set(), removal: null, loads: 0, autoFit: false, minimap: !large,
    };
  },
  mounted() {
    // The graph as sent (not through the reactive props' proxies: that would proxy every port).
    this.load(toRaw(this.graph) || { nodes: [], edges: [] }, this.selection || []);
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
      this.flow.setNodes(graph.nodes.map((node) => ({ ...this.toFlowNode(node), selected: selection.includes(node.id) })));
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
        // A large graph's minimap (a shape per node) waits until the graph itself is drawn.
        if (!this.minimap) setTimeout(() => (this.minimap = true), 300);
      };
      this.$nextTick(draw);
      // Fit once the nodes are measured (a fit before that lands at the minimum zoom).
      if (!this.viewport) this.fitPending = this.autoFit = true;
    },
    fit() {
      this.flow.fitView({ padding: 0.15 });
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
        this.flow.updateNodeData(node.id, {
          status: "idle", reason: "", text: "", error: "", invalid: null, progress: "",
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
        inputs: markRaw(node.inputs), // replaced, never changed in place: no need to watch them
        outputs: markRaw(node.outputs),
        status: (previous && previous.status) || "idle",
      };
    },
    toFlowNode(node) {
      return { id: node.id, type: "loom", position: { x: node.x || 0, y: node.y || 0 }, data: this.nodeData(node) };
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
    onConnectStart() {
      this.refusal = null;
      this.connecting = true;
    },
    onConnectEnd() {
      if (this.connecting && this.refusal) this.$emit("refused", { reason: this.refusal });
      this.connecting = false;
      this.refusal = null;
    },
    onConnect(connection) {
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
      this.$emit("open", { id: node.id });
    },
    onNodesChange(changes) {
      // Vue Flow has set a measured node's dimensions itself; applying them again would only cost
      // a pass over every node per change (O(n²) on a first draw).
      changes = changes.filter((c) => c.type !== "dimensions");
      const removed = this.split(changes);
      if (removed.asked.length) this.flow.applyNodeChanges(removed.asked);
      if (removed.ids.length) this.userRemoved("nodes", removed.ids);
      if (changes.some((c) => c.type === "select")) this.$emit("selection", { ids: this.flow.getSelectedNodes.value.map((n) => n.id) });
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
      const type = event.dataTransfer && event.dataTransfer.getData("application/x-nodeloom-type");
      if (!type) return;
      const position = this.flow.screenToFlowCoordinate({ x: event.clientX, y: event.clientY });
      this.$emit("palette-drop", { type, x: Math.round(position.x), y: Math.round(position.y) });
    },
  },
};
