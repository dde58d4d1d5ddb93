import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { CheckRun } from './api';

/**
 * CheckChart draws a check's measured values over time (uPlot) with its
 * thresholds as dashed lines; failed runs are red points.
 */
export function CheckChart({ runs, min, max, label }: { runs: CheckRun[]; min?: number; max?: number; label: string }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const pts = runs.filter((r) => typeof r.value === 'number');
    if (pts.length === 0) return;
    const xs = pts.map((r) => Date.parse(r.at) / 1000);
    const ys = pts.map((r) => r.value as number);
    const fails = pts.map((r) => (r.ok ? null : (r.value as number)));
    const data: uPlot.AlignedData = [xs, ys, fails, xs.map(() => (min ?? null) as number | null), xs.map(() => (max ?? null) as number | null)];
    const width = Math.max(200, el.clientWidth);
    const plot = new uPlot(
      {
        width,
        height: 120,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        axes: [
          { stroke: '#64748b', grid: { stroke: '#eef2f6' }, ticks: { stroke: '#e2e8f0' }, font: '11px system-ui, sans-serif' },
          { stroke: '#64748b', grid: { stroke: '#eef2f6' }, ticks: { stroke: '#e2e8f0' }, size: 56, font: '11px system-ui, sans-serif' },
        ],
        series: [
          {},
          { label, stroke: '#0284c7', width: 2, points: { size: 5, fill: '#0284c7' } },
          { label: 'failed', stroke: 'transparent', points: { size: 7, fill: '#dc2626', stroke: '#dc2626' } },
          { label: 'min', stroke: '#94a3b8', dash: [4, 4], width: 1, points: { show: false } },
          { label: 'max', stroke: '#94a3b8', dash: [4, 4], width: 1, points: { show: false } },
        ],
      },
      data,
      el,
    );
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height: 120 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [runs, min, max]);
  const measured = runs.some((r) => typeof r.value === 'number');
  return measured ? <div class="chart" ref={host} role="img" aria-label={`${label}: measured values of the last ${runs.length} runs`} /> : <p class="muted small">This check reports pass or fail only (no value to chart).</p>;
}
