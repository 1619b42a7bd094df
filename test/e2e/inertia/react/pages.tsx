/** @jsxImportSource react */
import { Link } from "@inertiajs/react";
import { Suspense } from "react";
import { useLiveResource, useSuspenseLiveResource } from "../../../../src/client/react.ts";
import type { BoardProps, Card, OtherProps } from "../types.ts";

export function Board({ board, cards, mine, viewer, latest, stats, banner }: BoardProps) {
  return (
    <main>
      {banner && <p id="banner">{banner}</p>}
      <h1 id="board-name">{board.name}</h1>
      <ul id="cards">
        {cards.map((card) => (
          <li key={card.id} data-id={card.id}>
            {card.title}
          </li>
        ))}
      </ul>
      <p id="viewer">{viewer ?? "anonymous"}</p>
      <ul id="mine">
        {mine.map((note) => (
          <li key={note.id}>{note.body}</li>
        ))}
      </ul>
      <p id="latest">{latest}</p>
      <LiveCards board={board.id} />
      <Suspense fallback={<p id="resource-suspense">loading</p>}>
        <SuspendedCards board={board.id} />
      </Suspense>
      <p id="stats">{stats === undefined ? "…" : `${stats.cards} cards`}</p>
      <Link id="to-other" href="/react/other">
        Other page
      </Link>
    </main>
  );
}

export function Other({ count }: OtherProps) {
  return (
    <main>
      <p id="count">{count}</p>
      <Link id="to-board" href="/react/boards/1">
        Board
      </Link>
    </main>
  );
}

/** A live JSON resource next to the page's props. */
function LiveCards({ board }: { board: number }) {
  const { data, status } = useLiveResource<Card[]>(`/api/boards/${board}/cards`);
  return (
    <p id="resource" data-status={status}>
      {data?.map((card) => card.title).join(" | ")}
    </p>
  );
}

/** The same resource through Suspense. */
function SuspendedCards({ board }: { board: number }) {
  const { data } = useSuspenseLiveResource<Card[]>(`/api/boards/${board}/cards`);
  return <p id="resource-suspense">{data.map((card) => card.title).join(" | ")}</p>;
}
