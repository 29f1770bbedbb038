/**
 * Small SVG line charts: sparklines in the run detail, curves in the comparison. The geometry
 * (`scaleSeries`, `pathOf`) is pure; `lineChart` turns it into an <svg>.
 */
import { formatNumber } from './format';

export interface Line {
  x: number[];
  y: (number | null)[];
  label?: string;
  color?: string;
}

export interface Extent {
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
}

/** The extent of every finite point of `lines` (a flat range is widened so it can be drawn). */
export function extentOf(lines: Line[]): Extent | null {
  let xMin = Infinity;
  let xMax = -Infinity;
  let yMin = Infinity;
  let yMax = -Infinity;
  for (const line of lines) {
    line.x.forEach((x, i) => {
      const y = line.y[i];
      if (y === null || y === undefined || !Number.isFinite(y) || !Number.isFinite(x)) {
        return;
      }
      xMin = Math.min(xMin, x);
      xMax = Math.max(xMax, x);
      yMin = Math.min(yMin, y);
      yMax = Math.max(yMax, y);
    });
  }
  if (xMin > xMax) {
    return null;
  }
  if (xMin === xMax) {
    xMin -= 1;
    xMax += 1;
  }
  if (yMin === yMax) {
    const pad = Math.abs(yMin) * 0.05 || 1;
    yMin -= pad;
    yMax += pad;
  }
  return { xMin, xMax, yMin, yMax };
}

/**
 * The SVG path (`M x y L x y ...`) of one line in a `width` x `height` box; a missing value
 * breaks the line (a new `M`).
 */
export function pathOf(line: Line, extent: Extent, width: number, height: number, pad = 2): string {
  const sx = (width - 2 * pad) / (extent.xMax - extent.xMin);
  const sy = (height - 2 * pad) / (extent.yMax - extent.yMin);
  const parts: string[] = [];
  let pen = 'M';
  line.x.forEach((x, i) => {
    const y = line.y[i];
    if (y === null || y === undefined || !Number.isFinite(y) || !Number.isFinite(x)) {
      pen = 'M';
      return;
    }
    const px = pad + (x - extent.xMin) * sx;
    const py = height - pad - (y - extent.yMin) * sy;
    parts.push(`${pen}${px.toFixed(1)} ${py.toFixed(1)}`);
    pen = 'L';
  });
  return parts.join(' ');
}

/** A color of the categorical palette of the lab's theme, by index. */
export function seriesColor(i: number): string {
  const palette = [
    'var(--jp-brand-color1)',
    'var(--jp-warn-color1)',
    'var(--jp-success-color1)',
    'var(--jp-error-color1)',
    'var(--jp-info-color1)',
    'var(--jp-brand-color3)',
    'var(--jp-warn-color3)',
    'var(--jp-success-color3)'
  ];
  return palette[i % palette.length];
}

const SVG = 'http://www.w3.org/2000/svg';

function svgEl<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    el.setAttribute(k, String(v));
  }
  return el;
}

/**
 * An <svg> with `lines`; `axes` adds the y range and x range as text (curves), without them it
 * is a bare sparkline.
 */
export function lineChart(lines: Line[], width: number, height: number, axes = false): SVGSVGElement {
  const svg = svgEl('svg', {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    class: axes ? 'mltrack-chart' : 'mltrack-sparkline'
  });
  const extent = extentOf(lines);
  if (!extent) {
    return svg;
  }
  const left = axes ? 48 : 0;
  const bottom = axes ? 16 : 0;
  const plot = svgEl('g', { transform: `translate(${left} 0)` });
  const w = width - left;
  const h = height - bottom;
  if (axes) {
    plot.appendChild(svgEl('rect', { x: 0, y: 0, width: w, height: h, class: 'mltrack-chart-frame' }));
  }
  lines.forEach((line, i) => {
    const path = svgEl('path', {
      d: pathOf(line, extent, w, h, axes ? 4 : 2),
      stroke: line.color ?? seriesColor(i),
      fill: 'none',
      'stroke-width': axes ? 1.5 : 1.2,
      'vector-effect': 'non-scaling-stroke'
    });
    if (line.label) {
      const title = svgEl('title', {});
      title.textContent = line.label;
      path.appendChild(title);
    }
    plot.appendChild(path);
  });
  svg.appendChild(plot);
  if (axes) {
    const text = (x: number, y: number, anchor: string, value: string): void => {
      const t = svgEl('text', { x, y, 'text-anchor': anchor, class: 'mltrack-chart-label' });
      t.textContent = value;
      svg.appendChild(t);
    };
    text(left - 4, 10, 'end', formatNumber(extent.yMax));
    text(left - 4, h, 'end', formatNumber(extent.yMin));
    text(left, height - 3, 'start', formatNumber(extent.xMin));
    text(width, height - 3, 'end', formatNumber(extent.xMax));
  }
  return svg;
}
